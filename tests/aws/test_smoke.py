"""Live smoke test: three builds through real pipelines after `make deploy` (one Linux command
build, one Windows docker build, one Windows conda build), each asserting the action's result,
its output artifact, and that no build instance is left.

On AWS (`make smoke-aws`; skipped without credentials and a deployment to test), it needs the
ec2-build stack and the example stack of cloudformation/example-pipeline.yml (deployed as
cloudformation/README.md says, with its artifact bucket and repository given to ec2-build); it
uses that stack's source bucket, artifact bucket, pipeline role and ECR repository, creates one
pipeline per case and deletes it afterwards. Settings (environment):

  EC2BUILD_SMOKE_EXAMPLE_STACK  the example stack's name; setting it turns the AWS cases on
  EC2BUILD_SMOKE_ACTION         the action type, Category/Provider/Version (default Build/EC2Build/1)
  EC2BUILD_SMOKE_LINUX_AMI      ImageId of the Linux case (default: Amazon Linux 2023 through SSM)
  EC2BUILD_SMOKE_WINDOWS_AMI    ImageId of the Windows cases (default resolve:ssm:/ec2-build/windows-build-ami)
  EC2BUILD_SMOKE_TIMEOUT        minutes to wait for one build (default 120)

The Linux case also runs against the local stack in `make test` (tests/e2e's deployment), so
this script's own code runs there too; the local stack runs no PowerShell, so the Windows cases
run on AWS only.
"""

from __future__ import annotations

import io
import os
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest

from tests.localstack.helpers import wait_until, zip_bytes

FINAL = ("Succeeded", "Failed")

BUILD_SH = """#!/bin/bash
set -euo pipefail
mkdir -p dist
echo "smoke $(cat version.txt) on $(uname -s)" > dist/app.txt
"""

DOCKERFILE = """# escape=`
FROM mcr.microsoft.com/windows/nanoserver:ltsc2022
COPY version.txt C:\\smoke\\version.txt
CMD ["cmd", "/c", "type", "C:\\\\smoke\\\\version.txt"]
"""

# A package with a compiled program: conda-build runs the recipe's bld.bat with the C++
# toolchain of the image (cl.exe through the vs2022 compiler package).
META_YAML = """package:
  name: ec2-build-smoke
  version: "1.0"
build:
  number: 0
requirements:
  build:
    - {{ compiler('c') }}
test:
  commands:
    - ec2-build-smoke.exe
"""
BLD_BAT = """cl.exe /nologo /Fe:ec2-build-smoke.exe hello.c || exit 1
if not exist "%LIBRARY_BIN%" mkdir "%LIBRARY_BIN%"
copy ec2-build-smoke.exe "%LIBRARY_BIN%\\" || exit 1
"""
HELLO_C = '#include <stdio.h>\nint main(void) { printf("ec2-build smoke\\n"); return 0; }\n'
# The compiler the image has (v143): conda-build's own default for Windows may be older.
CONDA_BUILD_CONFIG = "c_compiler:\n  - vs2022\n"


@dataclass
class Case:
    name: str
    platform: str  # Linux | Windows
    configuration: dict[str, str]
    files: dict[str, str]
    check: Callable[[zipfile.ZipFile, dict[str, Any]], None]
    needs: list[str] = field(default_factory=list)


def _check_linux(z: zipfile.ZipFile, _: dict[str, Any]) -> None:
    assert z.read("dist/app.txt").decode().startswith("smoke 1.0 on Linux"), z.namelist()


def _check_docker(z: zipfile.ZipFile, ctx: dict[str, Any]) -> None:
    import json

    definitions = json.loads(z.read("imagedefinitions.json"))
    assert definitions[0]["imageUri"].startswith(ctx["repository"] + "@sha256:"), definitions
    assert json.loads(z.read("imageDetail.json"))["ImageURI"] == definitions[0]["imageUri"]


def _check_conda(z: zipfile.ZipFile, _: dict[str, Any]) -> None:
    packages = [n for n in z.namelist() if n.startswith("win-64/ec2-build-smoke-1.0-") and n.endswith((".conda", ".tar.bz2"))]
    assert packages, z.namelist()


def cases(ctx: dict[str, Any]) -> list[Case]:
    return [
        Case("linux-command", "Linux",
             {"ImageId": ctx["linux_ami"], "InstanceType": ctx.get("linux_type", "t3.small"), "BuildKind": "command",
              "Command": "bash build.sh", "OutputArtifactPath": "dist", "TimeoutMinutes": "20"},
             {"build.sh": BUILD_SH, "version.txt": "1.0\n"}, _check_linux),
        Case("windows-docker", "Windows",
             {"ImageId": ctx["windows_ami"], "InstanceType": "m5.2xlarge,m5a.2xlarge,m6i.2xlarge", "BuildKind": "docker",
              "BuildTarget": f"{ctx.get('repository', '')}:smoke-{ctx['run']}", "TimeoutMinutes": "90"},
             {"Dockerfile": DOCKERFILE, "version.txt": "1.0\n"}, _check_docker, needs=["repository"]),
        Case("windows-conda", "Windows",
             {"ImageId": ctx["windows_ami"], "InstanceType": "m5.2xlarge,m5a.2xlarge,m6i.2xlarge", "BuildKind": "conda",
              "BuildTarget": "recipe", "TimeoutMinutes": "120"},
             {"recipe/meta.yaml": META_YAML, "recipe/bld.bat": BLD_BAT, "recipe/hello.c": HELLO_C,
              "recipe/conda_build_config.yaml": CONDA_BUILD_CONFIG}, _check_conda),
    ]


@dataclass
class Outcome:
    status: str
    message: str
    output: zipfile.ZipFile | None
    instances_left: list[str]


# ---------------------------------------------------------------------- where the builds run
class LocalTarget:
    """tests/e2e's deployment of the product in the local stack."""

    platforms = ("Linux",)

    def __init__(self, e2e: Any):
        self.e2e = e2e
        self.context = {"linux_ami": e2e.dep.linux_ami, "linux_type": "t3.large", "windows_ami": "", "run": uuid.uuid4().hex[:8]}

    def build(self, case: Case) -> Outcome:
        config = {k: v for k, v in case.configuration.items() if k != "TimeoutMinutes"}
        pipeline = self.e2e.pipeline(config, case.files)
        action = self.e2e.wait_final(pipeline, timeout=120)
        output = self.e2e.output_zip(pipeline) if action["status"] == "Succeeded" else None
        self.e2e.assert_invocations_ok()

        def left() -> list[str]:
            return [i["InstanceId"] for i in self.e2e.instances(pipeline) if i["State"]["Name"] not in ("shutting-down", "terminated")]

        wait_until(lambda: not left(), 30, interval=0.2, what="the build instance released")
        return Outcome(action["status"], action.get("errorDetails", {}).get("message", ""), output, left())


class AwsTarget:
    """A real account: one pipeline per case, created and deleted here."""

    platforms = ("Linux", "Windows")

    def __init__(self, example_stack: str):
        import boto3

        self.cp = boto3.client("codepipeline")
        self.s3 = boto3.client("s3")
        self.ec2 = boto3.client("ec2")
        self.ecr = boto3.client("ecr")
        cfn = boto3.client("cloudformation")
        outputs = {o["OutputKey"]: o["OutputValue"] for o in cfn.describe_stacks(StackName=example_stack)["Stacks"][0].get("Outputs", [])}
        role = cfn.describe_stack_resource(StackName=example_stack, LogicalResourceId="PipelineRole")["StackResourceDetail"]["PhysicalResourceId"]
        self.role_arn = boto3.client("iam").get_role(RoleName=role)["Role"]["Arn"]
        self.source_bucket = outputs["SourceBucket"]
        self.artifact_bucket = outputs["ArtifactBucketName"]
        repository_arn = outputs["ImageRepositoryArn"]  # arn:aws:ecr:REGION:ACCOUNT:repository/NAME
        _, _, _, region, account, rest = repository_arn.split(":", 5)
        self.repository_name = rest.split("/", 1)[1]
        suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
        self.category, self.provider, self.version = os.environ.get("EC2BUILD_SMOKE_ACTION", "Build/EC2Build/1").split("/")
        self.timeout = float(os.environ.get("EC2BUILD_SMOKE_TIMEOUT", "120")) * 60
        self.context = {
            "linux_ami": os.environ.get("EC2BUILD_SMOKE_LINUX_AMI", "resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"),
            "windows_ami": os.environ.get("EC2BUILD_SMOKE_WINDOWS_AMI", "resolve:ssm:/ec2-build/windows-build-ami"),
            "repository": f"{account}.dkr.ecr.{region}.{suffix}/{self.repository_name}",
            "run": uuid.uuid4().hex[:8],
        }

    def build(self, case: Case) -> Outcome:
        name = f"ec2-build-smoke-{case.name}-{self.context['run']}"
        key = f"smoke/{name}.zip"
        self.s3.put_object(Bucket=self.source_bucket, Key=key, Body=zip_bytes(case.files))
        outputs = [{"name": "BuildOutput"}]
        self.cp.create_pipeline(pipeline={
            "name": name, "roleArn": self.role_arn, "pipelineType": "V2",
            "artifactStore": {"type": "S3", "location": self.artifact_bucket},
            "stages": [
                {"name": "Source", "actions": [{
                    "name": "Source", "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "S3", "version": "1"},
                    "configuration": {"S3Bucket": self.source_bucket, "S3ObjectKey": key, "PollForSourceChanges": "false"},
                    "outputArtifacts": [{"name": "SourceOutput"}]}]},
                {"name": "Build", "actions": [{
                    "name": "Build", "actionTypeId": {"category": self.category, "owner": "Custom", "provider": self.provider, "version": self.version},
                    "configuration": case.configuration,
                    "inputArtifacts": [{"name": "SourceOutput"}], "outputArtifacts": outputs}]},
            ]})
        try:
            action = wait_until(lambda: self._final(name), self.timeout, interval=30, what=f"the result of {name}")
            output = self._output(name) if action["status"] == "Succeeded" else None
            left = self._instances_left(name)
            return Outcome(action["status"], action.get("errorDetails", {}).get("message", ""), output, left)
        finally:
            self.cp.delete_pipeline(name=name)
            self.s3.delete_object(Bucket=self.source_bucket, Key=key)
            if case.name == "windows-docker":
                self.ecr.batch_delete_image(repositoryName=self.repository_name, imageIds=[{"imageTag": f"smoke-{self.context['run']}"}])

    def _final(self, name: str) -> dict[str, Any] | None:
        for stage in self.cp.get_pipeline_state(name=name)["stageStates"]:
            if stage["stageName"] == "Build":
                latest = stage["actionStates"][0].get("latestExecution", {})
                return latest if latest.get("status") in FINAL else None
        return None

    def _output(self, name: str) -> zipfile.ZipFile:
        executions = self.cp.list_action_executions(pipelineName=name)["actionExecutionDetails"]
        build = next(e for e in executions if e["stageName"] == "Build")
        location = build["output"]["outputArtifacts"][0]["s3location"]
        body = self.s3.get_object(Bucket=location["bucket"], Key=location["key"])["Body"].read()
        return zipfile.ZipFile(io.BytesIO(body))

    def _instances_left(self, name: str) -> list[str]:
        def alive() -> list[str]:
            found = self.ec2.describe_instances(Filters=[
                {"Name": "tag:ec2-build:pipeline", "Values": [name]},
                {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}])
            return [i["InstanceId"] for r in found["Reservations"] for i in r["Instances"]]

        deadline = time.time() + 300  # TerminateInstances was requested; give EC2 a few minutes
        while alive() and time.time() < deadline:
            time.sleep(15)
        return alive()


def _aws_target() -> AwsTarget | None:
    stack = os.environ.get("EC2BUILD_SMOKE_EXAMPLE_STACK")
    if not stack:
        return None
    try:
        import boto3

        if boto3.Session().get_credentials() is None:
            return None
    except Exception:
        return None
    return AwsTarget(stack)


# ---------------------------------------------------------------------- the checks
def smoke(target: Any, case: Case) -> None:
    missing = [n for n in case.needs if not target.context.get(n)]
    if missing:
        pytest.skip(f"{case.name}: no {', '.join(missing)}")
    outcome = target.build(case)
    assert outcome.status == "Succeeded", f"{case.name}: {outcome.status}: {outcome.message}"
    assert outcome.output is not None
    case.check(outcome.output, target.context)
    assert outcome.instances_left == [], f"{case.name}: instances left running: {outcome.instances_left}"


CASE_NAMES = ["linux-command", "windows-docker", "windows-conda"]


def _case(target: Any, name: str) -> Case:
    return next(c for c in cases(target.context) if c.name == name)


def test_linux_command_build_in_the_local_stack(e2e):
    """The smoke test's Linux case against the local stack: the same case, target and checks."""
    target = LocalTarget(e2e)
    smoke(target, _case(target, "linux-command"))


@pytest.mark.parametrize("name", CASE_NAMES)
def test_build_on_aws(name):
    target = _aws_target()
    if target is None:
        pytest.skip("no AWS credentials or EC2BUILD_SMOKE_EXAMPLE_STACK: run `make smoke-aws` after `make deploy`")
    smoke(target, _case(target, name))
