"""Fixtures for the build flow: a local stack of its own (its agent must find the stand-in
docker/conda on PATH), the real SSM document and the real state machine, with substitutions."""

from __future__ import annotations

import io
import json
import os
import stat
import textwrap
import time
import uuid
import zipfile
from typing import Any

import pytest

from tests.deploy import create_build_document, create_state_machine
from tests.localstack import LocalStack
from tests.localstack.helpers import execution_history

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ACCOUNT = "123456789012"

# Stand-ins for the real tools: they record their arguments (one JSON array per line) and
# produce what the document expects from the real ones.
DOCKER = r"""#!/usr/bin/env python3
import json, sys
args = sys.argv[1:]
with open(RECORD, "a") as f:
    f.write(json.dumps(["docker"] + args) + "\n")
if args[:1] == ["login"]:
    secret = sys.stdin.read().strip()
    with open(RECORD, "a") as f:
        f.write(json.dumps(["docker-login-password-received", bool(secret)]) + "\n")
    print("Login Succeeded")
elif args[:1] == ["build"]:
    print("Step 1/1 : FROM scratch")
    print("Successfully built 0123456789ab")
elif args[:1] == ["push"]:
    print("latest: digest: sha256:" + "ab" * 32 + " size: 1234")
elif args[:2] == ["image", "inspect"]:
    ref = args[2]
    repo = ref.rsplit(":", 1)[0] if ":" in ref.rsplit("/", 1)[-1] else ref
    print(json.dumps([{"RepoTags": [ref], "RepoDigests": [repo + "@sha256:" + "ab" * 32]}]))
"""

CONDA = r"""#!/usr/bin/env python3
import json, os, sys
args = sys.argv[1:]
with open(RECORD, "a") as f:
    f.write(json.dumps(["conda"] + args) + "\n")
if args[:1] == ["build"]:
    out = args[args.index("--output-folder") + 1]
    recipe = args[-1]
    if not os.path.isfile(os.path.join(recipe, "meta.yaml")):
        sys.exit("no meta.yaml in " + recipe)
    os.makedirs(os.path.join(out, "linux-64"), exist_ok=True)
    open(os.path.join(out, "linux-64", "mypkg-1.0-py311_0.conda"), "wb").write(b"package")
    open(os.path.join(out, "linux-64", "repodata.json"), "w").write("{}")
    print("conda-build: built mypkg-1.0-py311_0.conda")
"""


def zip_bytes(files: dict[str, tuple[str, int] | str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, spec in files.items():
            content, mode = spec if isinstance(spec, tuple) else (spec, 0o644)
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFREG | mode) << 16
            z.writestr(info, content)
    return buf.getvalue()


class Flow:
    """The deployed parts in the local stack, and helpers to run one build."""

    def __init__(self, stack: LocalStack, record: str, settings: dict[str, str]):
        self.stack = stack
        self.record = record
        self.ec2 = stack.client("ec2")
        self.s3 = stack.client("s3")
        self.sfn = stack.client("stepfunctions")
        self.ssm = stack.client("ssm")
        self.bucket = "artifacts-" + uuid.uuid4().hex[:8]
        self.s3.create_bucket(Bucket=self.bucket)
        images = self.ec2.describe_images()["Images"]
        self.linux_amis = [i["ImageId"] for i in images if i.get("Platform") != "windows"]
        self.windows_ami = next(i["ImageId"] for i in images if i.get("Platform") == "windows")
        vpc = self.ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
        self.subnets = [
            self.ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24")["Subnet"]["SubnetId"] for i in (1, 2)
        ]
        self.linux_template = self.ec2.create_launch_template(
            LaunchTemplateName="linux-" + uuid.uuid4().hex[:6],
            LaunchTemplateData={"MetadataOptions": {"HttpTokens": "required"}, "InstanceInitiatedShutdownBehavior": "terminate"},
        )["LaunchTemplate"]["LaunchTemplateId"]
        self.windows_template = self.ec2.create_launch_template(
            LaunchTemplateName="windows-" + uuid.uuid4().hex[:6],
            LaunchTemplateData={"MetadataOptions": {"HttpTokens": "required"}, "InstanceInitiatedShutdownBehavior": "terminate"},
        )["LaunchTemplate"]["LaunchTemplateId"]
        self.document = create_build_document(self.ssm, "ec2-build-" + uuid.uuid4().hex[:6])
        self.substitutions = {
            "StackName": "flowtest",
            "BuildDocumentName": self.document,
            "LinuxLaunchTemplateId": self.linux_template,
            "WindowsLaunchTemplateId": self.windows_template,
            "SubnetIds": ",".join(self.subnets),
            "BuildLogGroupName": "/ec2-build/flowtest/builds",
            "Region": stack.region,
            "SpotRestarts": "2",
            # Builds here name no pool: the registry is never read.
            "PoolTableName": "flowtest-pools",
            "PoolClaimAttempts": "3",
            **settings,
        }
        self.state_machine = self.create_state_machine(self.substitutions)

    def create_state_machine(self, substitutions: dict[str, str]) -> str:
        return create_state_machine(self.sfn, substitutions)

    def put_artifact(self, name: str, files: dict[str, Any]) -> str:
        key = f"app/{name}/{uuid.uuid4().hex[:8]}"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=zip_bytes(files))
        return f"{name}=s3://{self.bucket}/{key}"

    def output_location(self, name: str) -> str:
        return f"{name}=s3://{self.bucket}/app/{name}/{uuid.uuid4().hex[:8]}"

    def execution_input(self, job_id: str | None = None, image_id: str | None = None, instance_types: list[str] | None = None,
                        capacity: str = "on-demand", build_seconds: int = 120, heartbeat_seconds: int = 180, **build: str) -> dict[str, Any]:
        job_id = job_id or str(uuid.uuid4())
        b = {
            "JobId": job_id, "BuildKind": "command", "Command": "", "BuildTarget": "", "WorkingDirectory": "",
            "OutputArtifactPath": "", "InputArtifacts": "", "OutputArtifacts": "", "KmsKeyId": "", "TimeoutSeconds": "3600",
        }
        b.update(build)
        return {
            "JobId": job_id,
            "Pipeline": {"Name": "app", "ExecutionId": str(uuid.uuid4()), "Stage": "Build", "Action": "Linux"},
            "Instance": {"ImageId": image_id or self.linux_amis[0], "InstanceTypes": instance_types or ["t3.large"], "Capacity": capacity},
            "Build": b,
            "Timeouts": {"BuildSeconds": build_seconds, "HeartbeatSeconds": heartbeat_seconds},
        }

    def start(self, execution_input: dict[str, Any], state_machine: str | None = None) -> str:
        return self.sfn.start_execution(
            stateMachineArn=state_machine or self.state_machine, name=execution_input["JobId"], input=json.dumps(execution_input)
        )["executionArn"]

    def wait(self, execution_arn: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            d = self.sfn.describe_execution(executionArn=execution_arn)
            if d["status"] != "RUNNING":
                return d
            if time.monotonic() > deadline:
                raise TimeoutError(f"{execution_arn} still running after {timeout}s")
            time.sleep(0.2)

    def run(self, execution_input: dict[str, Any], timeout: float = 120, state_machine: str | None = None) -> dict[str, Any]:
        return self.wait(self.start(execution_input, state_machine), timeout)

    def run_with_agent(self, image_id: str, agent: str, **build: str) -> dict[str, Any]:
        """One build on `image_id` whose emulated SSM agent behaves as `agent` says ("offline",
        "delay=N", "version=a.b.c.d"; tests/localstack/README.md); the image's rule is removed after."""
        self.stack.set_agent(images={image_id: agent})
        try:
            return self.run(self.execution_input(image_id=image_id, **build))
        finally:
            self.stack.set_agent(images={image_id: None})

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        return execution_history(self.sfn, execution_arn)

    def transitions(self, execution_arn: str) -> list[str]:
        """Names of the states entered, in order (each one is a billed state transition)."""
        return [e["stateEnteredEventDetails"]["name"] for e in self.history(execution_arn) if e["type"].endswith("StateEntered")]

    def instances_of(self, execution_arn: str) -> list[dict[str, Any]]:
        found = self.ec2.describe_instances(Filters=[{"Name": "tag:ec2-build:execution-arn", "Values": [execution_arn]}])
        return [i for r in found["Reservations"] for i in r["Instances"]]

    def recorded(self) -> list[list[str]]:
        if not os.path.exists(self.record):
            return []
        with open(self.record) as f:
            return [json.loads(line) for line in f if line.strip()]

    def read_zip(self, location: dict[str, str]) -> zipfile.ZipFile:
        body = self.s3.get_object(Bucket=location["Bucket"], Key=location["Key"])["Body"].read()
        return zipfile.ZipFile(io.BytesIO(body))


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    tools = tmp_path_factory.mktemp("tools")
    record = str(tools / "record.jsonl")
    for name, source in (("docker", DOCKER), ("conda", CONDA)):
        path = tools / name
        path.write_text(source.replace("RECORD", repr(record)))
        path.chmod(0o755)
    settings = getattr(request.module, "SETTINGS", {"AgentPollAttempts": "5", "AgentPollSeconds": "1", "AgentPollMaxSeconds": "2"})
    # The local agent gives build scripts the server's PATH: put the stand-ins first.
    old_path = os.environ.get("PATH", "")
    os.environ["PATH"] = str(tools) + os.pathsep + old_path
    try:
        stack = LocalStack(work_dir=os.environ.get("EC2BUILD_FLOW_DIR"))
        stack.start()
    finally:
        os.environ["PATH"] = old_path
    try:
        yield Flow(stack, record, settings)
    finally:
        stack.stop()
