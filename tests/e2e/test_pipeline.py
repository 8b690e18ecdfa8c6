"""End to end: a pipeline run reaches the "EC2 Build" action and the whole product handles it in
the local stack. Every test asserts the job's final state and message as CodePipeline shows them
(GetPipelineState), that no emulated instance is left running, and that the job's artifact
credentials reached neither the execution input nor the Lambda logs."""

from __future__ import annotations

import json

from tests.localstack.helpers import wait_until

BUILD_SH = """#!/bin/bash
set -euo pipefail
echo "building version $(cat version.txt)"
mkdir -p dist
echo "app $(cat version.txt), built on $(hostname -s 2>/dev/null || echo local)" > dist/app.txt
tr a-z A-Z < version.txt > dist/VERSION
echo done
"""

STARTED = "CodePipeline Action Execution State Change"


def finish(e2e, pipeline, status):
    """Wait for the action's final result, check it and the common guarantees; return it."""
    action = e2e.wait_final(pipeline)
    assert action["status"] == status, action
    e2e.assert_nothing_running(pipeline)
    e2e.assert_no_secret_leaked(pipeline)
    return action


def test_success_uploads_the_output_artifact(e2e):
    p = e2e.pipeline({"Command": "bash build.sh", "OutputArtifactPath": "dist"},
                     {"build.sh": BUILD_SH, "version.txt": "1.4.2\n"})
    action = finish(e2e, p, "Succeeded")
    d = e2e.execution(p)
    assert d["status"] == "SUCCEEDED"
    assert action["externalExecutionId"] == d["executionArn"]
    assert action["externalExecutionUrl"] == (
        "https://us-east-1.console.aws.amazon.com/states/home?region=us-east-1#/v2/executions/details/" + d["executionArn"])
    assert action["summary"].startswith("Build succeeded on i-") and "outputs: BuildOutput" in action["summary"]
    z = e2e.output_zip(p)
    assert sorted(z.namelist()) == ["dist/VERSION", "dist/app.txt"]
    assert z.read("dist/VERSION") == b"1.4.2\n"
    assert z.read("dist/app.txt").startswith(b"app 1.4.2, built on ")
    (instance,) = e2e.instances(p)
    assert json.loads(d["output"])["InstanceId"] == instance["InstanceId"]
    # The execution's end event reached the completion function, which reported at once.
    results = [i.result for i in e2e.dep.completion.invocations if i.result and i.result.get("jobs", {}).get("succeeded")]
    assert any(r["action"] == "reported-continuation" for r in results), results
    assert e2e.cp.get_pipeline_state(name=p)["stageStates"][-1]["latestExecution"]["status"] == "Succeeded"


def test_failing_build_command_reports_exit_code_and_last_lines(e2e):
    p = e2e.pipeline({"Command": "echo compiling module a\necho 'error: undefined symbol foo' >&2\nexit 3\necho never"})
    action = finish(e2e, p, "Failed")
    message = action["errorDetails"]["message"]
    assert action["errorDetails"]["code"] == "JobFailed"
    assert message.startswith("EC2 Build failed at stage build (BuildFailed): step build, exit code 3"), message
    assert "Last output:" in message
    assert "compiling module a" in message and "error: undefined symbol foo" in message
    assert "never" not in message
    d = e2e.execution(p)
    assert f"Execution: https://us-east-1.console.aws.amazon.com/states/home?region=us-east-1#/v2/executions/details/{d['executionArn']}" in message
    (instance,) = e2e.instances(p)
    assert f"Instance: {instance['InstanceId']}" in message
    assert "Log: group /aws/ssm/" not in message and "Log: group /ec2-build/ec2-build-e2e/builds" in message


def test_invalid_configuration_fails_naming_the_property_without_launching(e2e):
    p = e2e.pipeline({"Command": "true", "TimeoutMinutes": "999"})
    action = finish(e2e, p, "Failed")
    assert action["errorDetails"]["code"] == "ConfigurationError"
    assert "TimeoutMinutes" in action["errorDetails"]["message"] and '"999"' in action["errorDetails"]["message"]
    assert e2e.executions(p) == []
    assert e2e.instances(p) == []


def test_missing_input_artifact_is_a_download_failure(e2e):
    # A simulated CodeBuild action gives its output artifact a location but writes no object.
    generate = {"name": "Generate", "actions": [{
        "name": "Generate", "actionTypeId": {"category": "Build", "owner": "AWS", "provider": "CodeBuild", "version": "1"},
        "configuration": {"ProjectName": "generator"}, "inputArtifacts": [{"name": "SourceOutput"}],
        "outputArtifacts": [{"name": "Generated"}]}]}
    p = e2e.pipeline({"Command": "ls"}, extra_stages=[generate], inputs=["Generated"])
    action = finish(e2e, p, "Failed")
    message = action["errorDetails"]["message"]
    assert action["errorDetails"]["code"] == "JobFailed"
    assert message.startswith("EC2 Build failed at stage build (DownloadFailed): step download"), message
    assert "Generated" in message
    assert len(e2e.instances(p)) == 1  # launched, then released


def test_agent_never_online_times_out_and_releases(e2e):
    images = e2e.ec2.describe_images()["Images"]
    ami = next(i["ImageId"] for i in images if i["ImageId"] != e2e.dep.linux_ami and i.get("Platform") != "windows")
    e2e.stack.set_agent(images={ami: "offline"})
    try:
        p = e2e.pipeline({"Command": "true"}, image_id=ami)
        action = finish(e2e, p, "Failed")
    finally:
        e2e.stack.set_agent(images={ami: None})
    message = action["errorDetails"]["message"]
    assert message.startswith("EC2 Build failed at stage agent (AgentTimeout)"), message
    assert "did not come online after 3 checks" in message
    (instance,) = e2e.instances(p)
    assert instance["ImageId"] == ami


def test_execution_stopped_mid_build_terminates_the_instance_and_fails_the_job(e2e):
    p = e2e.pipeline({"Command": "echo long build started\nsleep 300"})
    d, instance_id = e2e.building(p)
    e2e.sfn.stop_execution(executionArn=d["executionArn"], error="Stopped", cause="stopped by the e2e test")
    action = finish(e2e, p, "Failed")
    message = action["errorDetails"]["message"]
    assert "the build execution was stopped (aborted) (Stopped): stopped by the e2e test. Its instance is released" in message, message
    assert e2e.sfn.describe_execution(executionArn=d["executionArn"])["status"] == "ABORTED"
    # The state machine's own release never ran: the completion function terminated the instance.
    released = [i.result for i in e2e.dep.completion.invocations if i.result and instance_id in i.result.get("released", [])]
    assert released, [i.result for i in e2e.dep.completion.invocations]
    history = e2e.sfn.get_execution_history(executionArn=d["executionArn"], maxResults=1000)["events"]
    entered = [h["stateEnteredEventDetails"]["name"] for h in history if h["type"].endswith("StateEntered")]
    assert "Release" not in entered


def test_started_event_delivered_five_times_runs_one_build(e2e):
    poller = e2e.dep.poller
    before = len(poller.invocations)
    poller.copies = 5  # at-least-once delivery: the same event reaches the function five times
    try:
        p = e2e.pipeline({"Command": "bash build.sh", "OutputArtifactPath": "dist"},
                         {"build.sh": BUILD_SH, "version.txt": "5.0.0\n"})
        (event,) = e2e.stack.router.wait_for_event({"detail-type": [STARTED], "detail": {"pipeline": [p], "stage": ["Build"], "state": ["STARTED"]}})
        action = finish(e2e, p, "Succeeded")
    finally:
        poller.copies = 1
    same = [i for i in poller.invocations[before:] if i.event["id"] == event["id"]]
    assert len(same) == 5 and all(i.status == "Succeeded" for i in same)
    assert sum(i.result["started"] for i in same) == 1, [i.result for i in same]
    assert len(e2e.executions(p)) == 1
    assert len(e2e.instances(p)) == 1
    assert e2e.output_zip(p).read("dist/VERSION") == b"5.0.0\n"
    assert action["summary"].startswith("Build succeeded")


def test_lost_started_event_is_picked_up_by_the_sweep(e2e):
    pattern = {"detail-type": [STARTED], "detail": {"stage": ["Build"], "state": ["STARTED"]}}
    e2e.stack.router.lose_next(pattern, 1)
    p = e2e.pipeline({"Command": "bash build.sh", "OutputArtifactPath": "dist"},
                     {"build.sh": BUILD_SH, "version.txt": "6.1.0\n"})
    wait_until(lambda: any(ev["detail"].get("pipeline") == p for ev in e2e.stack.router.lost), 10, what="the STARTED event lost")
    assert not any(i.event.get("detail", {}).get("pipeline") == p for i in e2e.dep.poller.invocations)
    assert e2e.action(p)["status"] == "InProgress" and "externalExecutionId" not in e2e.action(p)
    assert e2e.executions(p) == []
    e2e.dep.fire_sweep()
    action = finish(e2e, p, "Succeeded")
    assert len(e2e.executions(p)) == 1 and len(e2e.instances(p)) == 1
    assert e2e.output_zip(p).read("dist/VERSION") == b"6.1.0\n"
    assert action["summary"].startswith("Build succeeded")


def test_command_build_summary_mentions_no_image(e2e):
    p = e2e.pipeline({"Command": "mkdir -p dist && echo x > dist/x", "OutputArtifactPath": "dist"})
    action = finish(e2e, p, "Succeeded")
    assert "image:" not in action["summary"], action["summary"]
