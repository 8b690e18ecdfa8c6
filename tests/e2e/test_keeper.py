"""End to end: the keeper against what goes wrong around a build. Each test asserts the job's
final state and message as CodePipeline shows them, that no instance is left running after the
keeper's next run, and that nothing was started twice."""

from __future__ import annotations

import json
import time
import uuid

from tests.localstack.helpers import wait_until

LONG_BUILD = {"Command": "echo long build started\nsleep 300"}
STATUS_CHANGE = "Step Functions Execution Status Change"


def stopped(e2e, execution_arn):
    return wait_until(lambda: (lambda d: d if d["status"] == "ABORTED" else None)(
        e2e.sfn.describe_execution(executionArn=execution_arn)), 30, interval=0.2, what="execution aborted")


def assert_cleaned_up(e2e, pipeline):
    """After one more keeper run nothing of the pipeline runs, and there was only one build."""
    e2e.dep.keep()
    e2e.assert_nothing_running(pipeline)
    e2e.assert_no_secret_leaked(pipeline)
    assert len(e2e.executions(pipeline)) == 1
    assert len(e2e.instances(pipeline)) == 1


def test_pipeline_stopped_and_abandoned_mid_build_stops_the_build_and_a_retry_runs_one_new_build(e2e):
    # The build is long until the test puts a marker object in place: the stage's retry then
    # builds quickly with the same configuration.
    marker_bucket = f"e2e-marker-{uuid.uuid4().hex[:8]}"
    e2e.s3.create_bucket(Bucket=marker_bucket)
    p = e2e.pipeline({"Command": f"if aws s3api head-object --bucket {marker_bucket} --key go > /dev/null 2>&1; "
                                 f"then echo quick build; else {LONG_BUILD['Command']}; fi".replace("\n", "; ")})
    d, instance_id = e2e.building(p)
    pipeline_execution = json.loads(d["input"])["Pipeline"]["ExecutionId"]
    e2e.cp.stop_pipeline_execution(pipelineName=p, pipelineExecutionId=pipeline_execution, abandon=True,
                                   reason="wrong commit")
    assert e2e.action(p)["status"] == "Abandoned"
    # CodePipeline told the worker nothing; the build still runs until the keeper looks.
    assert e2e.sfn.describe_execution(executionArn=d["executionArn"])["status"] == "RUNNING"
    run = e2e.dep.keep()
    assert run["stopped_not_in_progress"] == [d["executionArn"]], run
    aborted = stopped(e2e, d["executionArn"])
    assert aborted["error"] == "PipelineActionNotInProgress"
    assert "as Abandoned" in aborted["cause"], aborted["cause"]
    # The completion function saw the abort and released the instance.
    wait_until(lambda: any(i.result and instance_id in i.result.get("released", []) for i in e2e.dep.completion.invocations),
               30, what="the completion function released the instance")
    assert_cleaned_up(e2e, p)
    assert e2e.action(p)["status"] == "Abandoned"

    # A retry of the stage (same pipeline execution) runs exactly one new build, which the
    # keeper leaves alone although the abandoned action execution has the same stage and action.
    e2e.s3.put_object(Bucket=marker_bucket, Key="go", Body=b"")
    e2e.cp.retry_stage_execution(pipelineName=p, pipelineExecutionId=pipeline_execution, stageName="Build",
                                 retryMode="FAILED_ACTIONS")
    (new,) = wait_until(lambda: [x for x in e2e.executions(p) if x["executionArn"] != d["executionArn"]], 30,
                        interval=0.2, what="the retried build started")
    assert json.loads(new["input"])["Pipeline"]["ExecutionId"] == pipeline_execution
    run = e2e.dep.keep()
    assert new["executionArn"] not in run["stopped_not_in_progress"] + run["stopped_instance_lost"], run
    action = e2e.wait_final(p)
    assert action["status"] == "Succeeded", action
    e2e.dep.keep()
    e2e.assert_nothing_running(p)
    e2e.assert_no_secret_leaked(p)
    assert len(e2e.executions(p)) == 2, "the retry started more than one build"
    instances = {i["InstanceId"]: i for i in e2e.instances(p)}
    assert len(instances) == 2 and instances[instance_id]["State"]["Name"] == "terminated", instances
    assert e2e.sfn.describe_execution(executionArn=d["executionArn"])["status"] == "ABORTED"


def test_completion_event_lost_after_an_abort_leaves_nothing_running(e2e):
    p = e2e.pipeline(LONG_BUILD)
    d, instance_id = e2e.building(p)
    e2e.stack.router.lose_next({"detail-type": [STATUS_CHANGE], "detail": {"executionArn": [d["executionArn"]],
                                                                            "status": ["ABORTED"]}})
    e2e.sfn.stop_execution(executionArn=d["executionArn"], error="Stopped", cause="stopped by an operator")
    stopped(e2e, d["executionArn"])
    wait_until(lambda: any(ev["detail"].get("executionArn") == d["executionArn"] for ev in e2e.stack.router.lost),
               10, what="the ABORTED event lost")
    (instance,) = e2e.instances(p)
    assert instance["State"]["Name"] == "running", "nothing released it: the event was lost"
    run = e2e.dep.keep()
    assert instance_id in run["terminated_orphans"], run
    # The scheduled sweep reports the job, as it does for any lost completion event.
    e2e.dep.fire_sweep()
    action = e2e.wait_final(p)
    assert action["status"] == "Failed", action
    assert "stopped (aborted) (Stopped): stopped by an operator" in action["errorDetails"]["message"], action
    assert_cleaned_up(e2e, p)


def test_instance_terminated_from_outside_mid_build_fails_the_job_naming_it(e2e):
    p = e2e.pipeline(LONG_BUILD)
    d, instance_id = e2e.building(p)
    began = time.monotonic()
    e2e.ec2.terminate_instances(InstanceIds=[instance_id])
    run = e2e.dep.keep()
    assert run["stopped_instance_lost"] == [d["executionArn"]], run
    action = e2e.wait_final(p)
    waited = time.monotonic() - began
    assert action["status"] == "Failed", action
    message = action["errorDetails"]["message"]
    assert "(InstanceLost)" in message and instance_id in message, message
    heartbeat = json.loads(d["input"])["Timeouts"]["HeartbeatSeconds"]
    assert waited < heartbeat / 2, f"{waited:.0f} s: not long before the {heartbeat} s heartbeat timeout"
    assert_cleaned_up(e2e, p)


def test_completion_function_failing_every_invocation_still_ends_cleanly(e2e):
    completion = e2e.dep.completion
    p = e2e.pipeline(LONG_BUILD)
    d, instance_id = e2e.building(p)
    completion.fail_next(1000)
    try:
        e2e.sfn.stop_execution(executionArn=d["executionArn"], error="Stopped", cause="stopped by an operator")
        stopped(e2e, d["executionArn"])
        mine = lambda invs: [i for i in invs if i.event.get("detail", {}).get("executionArn") == d["executionArn"]  # noqa: E731
                             and i.event["detail"].get("status") == "ABORTED"]
        attempts = mine(completion.wait_for(lambda invs: len(mine(invs)) == 3 and all(i.done.is_set() for i in mine(invs)), 30))
        assert [i.status for i in attempts] == ["Failed"] * 3  # the first try and Lambda's two retries
        (instance,) = e2e.instances(p)
        assert instance["State"]["Name"] == "running"
        run = e2e.dep.keep()
        assert instance_id in run["terminated_orphans"], run
        e2e.dep.fire_sweep()
        action = e2e.wait_final(p)
    finally:
        completion.fail_next(0)
    assert action["status"] == "Failed", action
    assert "stopped (aborted) (Stopped): stopped by an operator" in action["errorDetails"]["message"], action
    assert_cleaned_up(e2e, p)


def test_heartbeat_refused_shuts_the_instance_down_with_no_one_else_acting(e2e):
    # The agent picks the command up 4 s after SendCommand; the build is stopped before that and
    # the stop's event is lost, and no keeper runs: the document's first heartbeat is refused
    # (the task is closed), and the instance shuts itself down.
    ami = e2e.dep.linux_ami
    e2e.stack.set_agent(images={ami: "pickup=4"})
    try:
        p = e2e.pipeline(LONG_BUILD)
        (instance,) = wait_until(lambda: e2e.instances(p), 30, what="instance launched")
        instance_id = instance["InstanceId"]
        wait_until(lambda: e2e.ssm.list_command_invocations(InstanceId=instance_id)["CommandInvocations"],
                   30, interval=0.2, what="build command sent")
        d = e2e.execution(p)
        e2e.stack.router.lose_next({"detail-type": [STATUS_CHANGE], "detail": {"executionArn": [d["executionArn"]]}})
        e2e.sfn.stop_execution(executionArn=d["executionArn"], error="Stopped", cause="stopped by an operator")
        down = wait_until(lambda: (lambda i: i if i["State"]["Name"] in ("shutting-down", "terminated") else None)(
            e2e.instances(p)[0]), 60, interval=0.5, what="the instance shut itself down")
    finally:
        e2e.stack.set_agent(images={ami: None})
    assert down["StateReason"]["Code"] == "Client.InstanceInitiatedShutdown", down["StateReason"]
    assert e2e.stack.shutdowns(instance_id)[-1]["When"] == "now"
    assert not any(instance_id in (i.result or {}).get("released", []) for i in e2e.dep.completion.invocations)
    # The sweep reports the job; the keeper finds nothing left to do.
    e2e.dep.fire_sweep()
    action = e2e.wait_final(p)
    assert action["status"] == "Failed", action
    assert "stopped (aborted) (Stopped): stopped by an operator" in action["errorDetails"]["message"], action
    assert_cleaned_up(e2e, p)
