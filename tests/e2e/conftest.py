"""One deployment of the whole product into the session's local stack, shared by every e2e test.

Each test creates its own pipeline (unique name) whose creation starts a run, as on AWS; the run
reaches the "EC2 Build" action, the local CodePipeline creates the job and emits STARTED, and from
there everything is the product: the real poller and completion binaries under the Runtime API
emulator, the real state machine, the real SSM document run by the local agent.

The sweep schedule exists (the template's rate(1 minute)) but its timer is off: a test that
wants the sweep fires it (`e2e.dep.fire_sweep()`), so no test depends on when a minute ends.
"""

from __future__ import annotations

import io
import json
import os
import time
import uuid
import zipfile
from typing import Any

import pytest

from tests.deploy import Deployment, deploy
from tests.localstack.helpers import custom_stage, s3_source_pipeline, wait_until, zip_bytes

# Short agent polling (statemachine placeholders, not an edit of the ASL): 3 checks, 1 s apart.
AGENT_POLLING = {"AgentPollAttempts": "3", "AgentPollSeconds": "1", "AgentPollMaxSeconds": "1"}
FINAL = ("Succeeded", "Failed")


class E2E:
    def __init__(self, stack: Any, dep: Deployment):
        self.stack = stack
        self.dep = dep
        self.cp = stack.client("codepipeline")
        self.sfn = stack.client("stepfunctions")
        self.s3 = stack.client("s3")
        self.ssm = stack.client("ssm")
        self.ec2 = stack.client("ec2")

    # ------------------------------------------------------------------ pipelines
    def pipeline(self, configuration: dict[str, str] | None = None, files: dict[str, str] | None = None,
                 *, extra_stages: list[dict[str, Any]] | None = None, inputs: list[str] | None = None,
                 outputs: list[str] | None = None, image_id: str | None = None) -> str:
        """Upload `files` as the S3 source, create a pipeline Source → [extra] → Build ("EC2 Build"
        action) and return its name. Creating it starts a run (as on AWS)."""
        name = "e2e-" + uuid.uuid4().hex[:8]
        source_bucket = f"{name}-source"
        self.s3.create_bucket(Bucket=source_bucket)
        self.s3.put_object(Bucket=source_bucket, Key="source.zip", Body=zip_bytes(files or {"README": "empty\n"}))
        config = {"ImageId": image_id or self.dep.linux_ami, "InstanceType": "t3.large", **(configuration or {})}
        config = {k: v for k, v in config.items() if v is not None}
        stage = custom_stage("Build", "EC2Build", self.dep.action_type["provider"],
                             inputs if inputs is not None else ["SourceOutput"],
                             outputs if outputs is not None else (["BuildOutput"] if "OutputArtifactPath" in config else []), config,
                             category=self.dep.action_type["category"])
        s3_source_pipeline(self.stack, name, source_bucket, "source.zip", [*(extra_stages or []), stage],
                           artifact_bucket=self.dep.artifact_bucket)
        return name

    def action(self, pipeline: str, stage: str = "Build") -> dict[str, Any]:
        """latestExecution of the stage's action in GetPipelineState ({} before it starts)."""
        state = self.cp.get_pipeline_state(name=pipeline)
        st = next(s for s in state["stageStates"] if s["stageName"] == stage)
        return st["actionStates"][0].get("latestExecution", {})

    def wait_final(self, pipeline: str, timeout: float = 90) -> dict[str, Any]:
        return wait_until(lambda: (lambda a: a if a.get("status") in FINAL else None)(self.action(pipeline)),
                          timeout, interval=0.2, what=f"final result of {pipeline}")

    # ------------------------------------------------------------------ what ran
    def executions(self, pipeline: str) -> list[dict[str, Any]]:
        out = []
        for page in self.sfn.get_paginator("list_executions").paginate(stateMachineArn=self.dep.state_machine_arn):
            for e in page["executions"]:
                d = self.sfn.describe_execution(executionArn=e["executionArn"])
                if json.loads(d["input"])["Pipeline"]["Name"] == pipeline:
                    out.append(d)
        return out

    def execution(self, pipeline: str) -> dict[str, Any]:
        (d,) = self.executions(pipeline)
        return d

    def instances(self, pipeline: str) -> list[dict[str, Any]]:
        return self.dep.instances(**{"ec2-build:pipeline": pipeline})

    def building(self, pipeline: str) -> tuple[dict[str, Any], str]:
        """Wait until the pipeline's build command runs on its instance; return the execution
        (DescribeExecution) and the instance id."""
        (instance,) = wait_until(lambda: self.instances(pipeline), 30, what="instance launched")
        instance_id = instance["InstanceId"]

        def running() -> bool:
            invs = self.ssm.list_command_invocations(InstanceId=instance_id)["CommandInvocations"]
            return any(i["Status"] == "InProgress" for i in invs)

        wait_until(running, 30, interval=0.2, what="build command running on the instance")
        return self.execution(pipeline), instance_id

    def events(self, pipeline: str, state: str, stage: str = "Build") -> list[dict[str, Any]]:
        return [e for e in self.stack.router.received
                if e["detail-type"] == "CodePipeline Action Execution State Change"
                and e["detail"]["pipeline"] == pipeline and e["detail"]["stage"] == stage and e["detail"]["state"] == state]

    def output_zip(self, pipeline: str, name: str = "BuildOutput") -> zipfile.ZipFile:
        (ev,) = self.events(pipeline, "SUCCEEDED")
        loc = next(a["s3location"] for a in ev["detail"]["output-artifacts"] if a["name"] == name)
        body = self.s3.get_object(Bucket=loc["bucket"], Key=loc["key"])["Body"].read()
        return zipfile.ZipFile(io.BytesIO(body))

    def job_credentials(self, job_id: str) -> dict[str, str]:
        return self.cp.get_job_details(jobId=job_id)["jobDetails"]["data"]["artifactCredentials"]

    # ------------------------------------------------------------------ checks every test makes
    def assert_nothing_running(self, pipeline: str) -> None:
        """No emulated instance of the pipeline (nor of the deployment) is left running, and the
        pipeline's executions are over."""
        def settled() -> bool:
            states = [i["State"]["Name"] for i in self.dep.instances()]
            return all(s in ("shutting-down", "terminated") for s in states)
        wait_until(settled, 15, interval=0.2, what="every instance of the deployment terminated")
        assert all(d["status"] != "RUNNING" for d in self.executions(pipeline))

    def assert_no_secret_leaked(self, pipeline: str) -> None:
        """The job's artifactCredentials never reach the execution input or the Lambda logs."""
        logs = self.dep.lambda_logs()
        assert logs, "the Lambdas logged nothing"
        for d in self.executions(pipeline):
            creds = self.job_credentials(d["name"])  # the execution is named after the job
            for key in ("accessKeyId", "secretAccessKey", "sessionToken"):
                value = creds[key]
                assert value not in d["input"], f"{key} in the execution input"
                assert value not in logs, f"{key} in the Lambda logs"

    def assert_invocations_ok(self) -> None:
        for fn in self.dep.functions.values():
            # Failures a test injected (LambdaFunction.fail_next) are the test's own.
            bad = [i for i in fn.invocations if i.done.is_set() and i.status != "Succeeded"
                   and (i.error or {}).get("errorType") != "Injected"]
            assert not bad, f"{fn.name}: {[(i.status, i.error) for i in bad]}\n{fn.logs()[-3000:]}"


_DEPLOYMENTS: dict[int, E2E] = {}


@pytest.fixture(scope="session")
def e2e(stack) -> E2E:
    """The one deployment of the session's stack. tests/aws imports this fixture too; the cache
    keeps it one deployment (two pollers of one action type would take each other's jobs)."""
    if id(stack) not in _DEPLOYMENTS:
        dep = deploy(stack, name="ec2-build-e2e", substitutions=AGENT_POLLING, schedule=False)
        _DEPLOYMENTS[id(stack)] = E2E(stack, dep)
    return _DEPLOYMENTS[id(stack)]


@pytest.fixture(autouse=True)
def _lambdas_healthy(request):
    yield
    if "e2e" in request.fixturenames:
        e = request.getfixturevalue("e2e")
        e.assert_invocations_ok()
