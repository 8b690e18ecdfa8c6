"""`make demo`: the whole product on the local AWS stack, followed as a user would follow it.

    python -m tests.localstack.demo          # a build that succeeds
    python -m tests.localstack.demo --fail   # a build whose command fails

Starts the local stack, deploys the product from cloudformation/template.yml (tests/deploy.py),
uploads a small source with a build script, creates a pipeline (which starts a run, as on AWS)
and prints what happens, read from the real signals: the Lambda invocations and their logs, the
Step Functions execution and its history, the build's CloudWatch log stream, EC2 instance state
and CodePipeline's GetPipelineState. Every line carries the time since the run started and the
time the stage took.

Exit status: 0 when the product behaved as it should. For the success demo that means the job
succeeded, the output artifact holds what the build wrote and the instance is terminated; for
`--fail` it means the job FAILED with the build's exit code and last output lines in the message
and the instance is terminated (a failure reported correctly is a successful demo). Anything
else exits 1. Every process started here is stopped before exiting.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import subprocess
import sys
import time
import uuid
import zipfile
from typing import Any

from tests.deploy import REPO, deploy
from tests.localstack import LocalStack
from tests.localstack.helpers import custom_stage, execution_history, s3_source_pipeline, zip_bytes

BUILD_SCRIPT = """#!/bin/bash
set -euo pipefail
echo "== building hello $(cat VERSION) on $(uname -sm)"
for step in compile link test; do
  echo "-- $step"
  sleep 0.5
done
mkdir -p dist
printf 'hello from ec2-build, version %s\\n' "$(cat VERSION)" > dist/hello.txt
sha256sum dist/hello.txt > dist/SHA256SUMS
echo "== done: $(ls dist | tr '\\n' ' ')"
"""

FAILING_SCRIPT = """#!/bin/bash
set -uo pipefail
echo "== building hello $(cat VERSION) on $(uname -sm)"
echo "-- compile"
sleep 0.5
echo "hello.c:3:5: error: 'prinf' undeclared (did you mean 'printf'?)" >&2
echo "== compile failed"
exit 2
"""

AGENT_POLLING = {"AgentPollSeconds": "2", "AgentPollMaxSeconds": "4"}


class Clock:
    """Prints what happened in the order it happened: signals arrive from several sources with
    their own timestamps, so lines wait `settle` seconds and come out sorted by time."""

    def __init__(self, settle: float = 1.0) -> None:
        self.t0 = time.time()
        self.last = self.t0
        self.settle = settle
        self.pending: list[tuple[float, int, str, bool]] = []

    def say(self, what: str, when: float | dt.datetime | None = None, stage: bool = True) -> None:
        t = when.timestamp() if isinstance(when, dt.datetime) else (when if when is not None else time.time())
        self.pending.append((t, len(self.pending), what, stage))

    def flush(self, everything: bool = False) -> None:
        horizon = float("inf") if everything else time.time() - self.settle
        ready = sorted(p for p in self.pending if p[0] <= horizon)
        self.pending = [p for p in self.pending if p[0] > horizon]
        for t, _, what, stage in ready:
            took = f"(+{max(0.0, t - self.last):5.1f}s)" if stage else " " * 9
            print(f"[{t - self.t0:6.1f}s] {took} {what}", flush=True)
            if stage:
                self.last = max(self.last, t)


def run(fail: bool, keep: bool) -> int:
    work = None
    if keep:
        work = os.path.abspath(os.path.join("build", "demo-" + time.strftime("%Y%m%d-%H%M%S")))
        os.makedirs(work, exist_ok=True)
    print("Starting the local AWS stack (moto + ec2-build extensions) ...", flush=True)
    with LocalStack(work_dir=work) as stack:
        dep = deploy(stack, name="ec2-build-demo", substitutions=AGENT_POLLING)
        print(f"Deployed ec2-build into it from cloudformation/template.yml:")
        print(f"  action type  {'/'.join(dep.action_type[k] for k in ('owner', 'category', 'provider', 'version'))}")
        print(f"  state machine {dep.state_machine_arn}")
        print(f"  SSM document  {dep.document_name} (ssm-documents/build.yml)")
        print(f"  Lambdas       {dep.poller.binary}, {dep.completion.binary} (Runtime API emulator)")
        print(f"  (agent polling shortened for the demo: first check after {AGENT_POLLING['AgentPollSeconds']} s)")
        return follow(stack, dep, fail)


def follow(stack: Any, dep: Any, fail: bool) -> int:
    cp, s3, sfn, ec2, logs = (stack.client(s) for s in ("codepipeline", "s3", "stepfunctions", "ec2", "logs"))
    name = "demo-" + uuid.uuid4().hex[:6]
    source_bucket = f"{name}-source"
    s3.create_bucket(Bucket=source_bucket)
    files = {"build.sh": FAILING_SCRIPT if fail else BUILD_SCRIPT, "VERSION": "1.0.%d" % (int(time.time()) % 100)}
    s3.put_object(Bucket=source_bucket, Key="app.zip", Body=zip_bytes(files))
    config = {"ImageId": dep.linux_ami, "InstanceType": "t3.large", "Command": "bash build.sh", "OutputArtifactPath": "dist"}
    print(f"\nPipeline {name}: Source (s3://{source_bucket}/app.zip) -> Build (EC2 Build: {config['Command']!r} on {config['ImageId']})")
    print(f"Build script ({'failing' if fail else 'succeeding'} sample):")
    for line in files["build.sh"].splitlines():
        print("  | " + line)
    print(flush=True)

    clock = Clock()
    s3_source_pipeline(stack, name, source_bucket, "app.zip", [
        custom_stage("Build", "EC2Build", dep.action_type["provider"], ["SourceOutput"], ["BuildOutput"], config, category=dep.action_type["category"]),
    ], artifact_bucket=dep.artifact_bucket)
    clock.say("pipeline run started (CreatePipeline starts one, as on AWS)")

    seen: set[str] = set()
    execution_arn = instance_id = command_id = None
    log_token: dict[str, str] = {}
    action: dict[str, Any] = {}
    terminated = False
    deadline = time.time() + 180
    while time.time() < deadline:
        # The poller picking the job up: its invocation for our STARTED event.
        if "picked" not in seen:
            for inv in list(dep.poller.invocations):
                if inv.event.get("detail", {}).get("pipeline") == name and inv.done.is_set() and inv.result is not None:
                    seen.add("picked")
                    began = time.time() - (time.monotonic() - inv.started_at)  # monotonic -> wall clock
                    clock.say(f"job picked up by the poller Lambda (STARTED event; invocation took {inv.duration * 1000:.0f} ms, started {inv.result['started']} job)", began)
        state = cp.get_pipeline_state(name=name)
        action = next(s for s in state["stageStates"] if s["stageName"] == "Build")["actionStates"][0].get("latestExecution", {})
        if execution_arn is None and action.get("externalExecutionId"):
            execution_arn = action["externalExecutionId"]
            d = sfn.describe_execution(executionArn=execution_arn)
            clock.say(f"execution started: {d['name']}", d["startDate"])
            clock.say(f"  console link (CodePipeline's 'Details'): {action.get('externalExecutionUrl')}", d["startDate"], stage=False)
        if execution_arn:
            for h in execution_history(sfn, execution_arn):
                key = f"h{h['id']}"
                if key in seen:
                    continue
                seen.add(key)
                t, kind = h["timestamp"], h["type"]
                if kind == "TaskStateExited" and h["stateExitedEventDetails"]["name"] == "Launch":
                    out = json.loads(h["stateExitedEventDetails"]["output"])
                    launched, run = out.get("Launched", {}), out.get("Run", {})
                    instance_id = launched.get("InstanceId")
                    market = run["Markets"]["Names"][run["Acquire"]["MarketIndex"]] if "Markets" in run else "?"
                    clock.say(f"instance acquired: {instance_id} ({launched.get('InstanceType')}, {market})", t)
                elif kind == "ChoiceStateExited" and h["stateExitedEventDetails"]["name"] == "AgentOnline?":
                    out = json.loads(h["stateExitedEventDetails"]["output"])
                    if out.get("Run", {}).get("AgentStatus", {}).get("Online"):
                        clock.say(f"SSM agent online on {instance_id} (check {out['Run']['Agent']['Attempt']})", t)
                elif kind == "TaskSubmitted" and "sendCommand" in h["taskSubmittedEventDetails"]["resource"]:
                    command_id = json.loads(h["taskSubmittedEventDetails"]["output"])["Command"]["CommandId"]
                    clock.say(f"build command sent: {command_id} (log group {dep.values['BuildLogGroup']})", t)
                    clock.flush(everything=True)
                    operator_cli(stack, dep, "status")
                elif kind == "TaskSucceeded" and h["taskSucceededEventDetails"]["resource"].startswith("sendCommand"):
                    out = json.loads(h["taskSucceededEventDetails"]["output"])
                    for o in out.get("Outputs", []):
                        clock.say(f"output uploaded: {o['Name']} -> s3://{o['Bucket']}/{o['Key']}", t)
                elif kind == "TaskFailed" and h["taskFailedEventDetails"]["resource"].startswith("sendCommand"):
                    clock.say(f"build reported failure: {h['taskFailedEventDetails'].get('error')}", t)
                elif kind in ("ExecutionSucceeded", "ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut"):
                    clock.say(f"execution ended: {kind[len('Execution'):].upper()}", t)
        # Build output, line by line, from the CloudWatch log stream the agent writes.
        if command_id and instance_id:
            for which in ("stdout", "stderr"):
                stream = f"{command_id}/{instance_id}/LinuxBuild/{which}"
                kw: dict[str, Any] = {"logGroupName": dep.values["BuildLogGroup"], "logStreamName": stream, "startFromHead": True}
                if stream in log_token:
                    kw["nextToken"] = log_token[stream]
                try:
                    page = logs.get_log_events(**kw)
                except logs.exceptions.ResourceNotFoundException:
                    continue
                log_token[stream] = page["nextForwardToken"]
                for e in page["events"]:
                    clock.say(f"  {'build' if which == 'stdout' else 'build!'} | {e['message'].rstrip()}", e["timestamp"] / 1000, stage=False)
        if action.get("status") in ("Succeeded", "Failed") and "result" not in seen:
            seen.add("result")
            when = action.get("lastStatusChange")
            if action["status"] == "Succeeded":
                clock.say(f"job result: SUCCEEDED - {action.get('summary')}", when)
            else:
                err = action.get("errorDetails", {})
                clock.say(f"job result: FAILED ({err.get('code')})", when)
                for line in err.get("message", "").splitlines():
                    clock.say(f"  | {line}", when, stage=False)
        if instance_id and not terminated:
            inst = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
            if inst["State"]["Name"] in ("shutting-down", "terminated"):
                terminated = True
                clock.say(f"instance terminated: {instance_id} ({inst['State']['Name']})")
        clock.flush()
        if "result" in seen and (terminated or instance_id is None):
            break
        time.sleep(0.25)
    clock.flush(everything=True)
    print(f"\nTotal: {time.time() - clock.t0:.1f}s from pipeline start to the end of the run.\n")
    shown = operator_cli(stack, dep, "show", name)
    return verdict(stack, dep, name, action, fail, terminated) or (0 if shown == 0 else 1)


def operator_cli(stack: Any, dep: Any, *args: str) -> int:
    """Run the operator CLI (`ec2-build`, the real binary) on the demo's deployment and print what
    it prints; return its exit code."""
    binary = os.path.join(os.environ.get("LAMBDA_BIN_DIR") or os.path.join(REPO, "target", "debug"), "ec2-build")
    done = subprocess.run([binary, *args], env=stack.env(EC2_BUILD_STACK=dep.name), capture_output=True, text=True, timeout=60)
    print(f"\n$ ec2-build {' '.join(args)}")
    for line in (done.stdout + done.stderr).splitlines():
        print("  " + line)
    print(flush=True)
    if done.returncode:
        print(f"ec2-build {args[0]} exited with {done.returncode}")
    return done.returncode


def verdict(stack: Any, dep: Any, name: str, action: dict[str, Any], fail: bool, terminated: bool) -> int:
    problems = []
    if not terminated:
        problems.append("the build instance was not terminated")
    running = [i["InstanceId"] for i in dep.instances() if i["State"]["Name"] not in ("shutting-down", "terminated")]
    if running:
        problems.append(f"instances still running: {running}")
    if not fail:
        if action.get("status") != "Succeeded":
            problems.append(f"the job did not succeed: {action}")
        else:
            ev = [e for e in stack.router.received if e["detail-type"] == "CodePipeline Action Execution State Change"
                  and e["detail"].get("pipeline") == name and e["detail"].get("stage") == "Build" and e["detail"]["state"] == "SUCCEEDED"]
            loc = ev[0]["detail"]["output-artifacts"][0]["s3location"]
            body = stack.client("s3").get_object(Bucket=loc["bucket"], Key=loc["key"])["Body"].read()
            z = zipfile.ZipFile(io.BytesIO(body))
            print(f"Output artifact BuildOutput (s3://{loc['bucket']}/{loc['key']}, {len(body)} bytes):")
            for info in z.infolist():
                print(f"  {info.filename} ({info.file_size} bytes)")
                for line in z.read(info).decode("utf-8", "replace").splitlines():
                    print(f"    {line}")
            if "dist/hello.txt" not in z.namelist():
                problems.append("dist/hello.txt missing from the output artifact")
    else:
        message = action.get("errorDetails", {}).get("message", "")
        if action.get("status") != "Failed":
            problems.append(f"the job did not fail: {action}")
        elif "exit code 2" not in message or "'prinf' undeclared" not in message:
            problems.append("the failure message lacks the exit code or the build's last output lines")
        else:
            print("The failure was reported as a user needs it: stage, exit code, last output lines, links.")
    bad = [i for fn in dep.functions.values() for i in fn.invocations if i.done.is_set() and i.status != "Succeeded"]
    if bad:
        problems.append(f"failed Lambda invocations: {bad}")
    if problems:
        print("\nDEMO FAILED: the product misbehaved:")
        for p in problems:
            print("  - " + p)
        return 1
    print("\nDemo OK." + (" (a failing build, reported correctly)" if fail else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fail", action="store_true", help="run a build whose command fails")
    parser.add_argument("--keep", action="store_true", help="keep the stack's logs and instance folders under build/")
    args = parser.parse_args(argv)
    return run(args.fail, args.keep)


if __name__ == "__main__":
    sys.exit(main())
