"""The instance limits itself (issue 11, item 2): the document schedules the OS's shutdown at the
build task's timeout plus a margin, and shuts down at once when a heartbeat is answered
TaskTimedOut or InvalidToken (the execution no longer waits for this build). The launch
templates make an OS shutdown terminate the instance (InstanceInitiatedShutdownBehavior).

In the local stack the document's `shutdown` is the emulated instance's own
(tests/localstack/ext/os_shutdown.py): it terminates the instance in moto with the state reason
an OS shutdown gets on AWS (Client.InstanceInitiatedShutdown), never this machine."""

from __future__ import annotations

import time

from tests.flow.test_build_flow import assert_released

MARGIN_SECONDS = 300  # the document's SHUTDOWN_MARGIN_SECONDS / $ShutdownMarginSeconds
TASK_EXTRA_SECONDS = 300  # Timeouts.BuildSeconds = TimeoutSeconds + 300 (docs/contracts.md)


def test_the_shutdown_is_scheduled_at_the_build_timeout_plus_a_margin(flow):
    timeout = 1500
    build_seconds = timeout + TASK_EXTRA_SECONDS
    d = flow.run(flow.execution_input(Command="true", TimeoutSeconds=str(timeout), build_seconds=build_seconds))
    assert d["status"] == "SUCCEEDED", d
    (instance,) = flow.instances_of(d["executionArn"])
    (request,) = flow.stack.shutdowns(instance["InstanceId"])
    # systemd's shutdown takes whole minutes: rounded up, never before the task's own timeout.
    minutes = -(-(timeout + TASK_EXTRA_SECONDS + MARGIN_SECONDS) // 60)
    assert request["When"] == f"+{minutes}" and request["DelaySeconds"] == minutes * 60, request
    assert request["Argv"][0] == "-P"  # power off: EC2 does not take a halt as a shutdown
    assert build_seconds + MARGIN_SECONDS <= request["DelaySeconds"] < build_seconds + MARGIN_SECONDS + 60
    # The build succeeded: Release terminated the instance long before the scheduled time.
    assert_released(flow, d["executionArn"])
    assert instance["StateReason"]["Code"] != "Client.InstanceInitiatedShutdown"


def wait_for_state(flow, execution_arn: str, state: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while state not in flow.transitions(execution_arn):
        assert time.monotonic() < deadline, f"{state} not entered"
        time.sleep(0.2)


def test_a_heartbeat_answered_timed_out_shuts_the_instance_down(flow):
    # The agent picks the command up 4 s after SendCommand; the execution is stopped before that,
    # so the document's first heartbeat is answered as for a closed task (AWS: TaskTimedOut; moto
    # 5.2.5: InvalidToken, as the execution is no longer running). Nobody calls TerminateInstances:
    # the flow tests have no completion Lambda, and a stopped execution never reaches Release.
    ami = flow.linux_amis[1]
    flow.stack.set_agent(images={ami: "pickup=4"})
    try:
        arn = flow.start(flow.execution_input(image_id=ami, Command="sleep 120"))
        wait_for_state(flow, arn, "RunBuild")
        flow.sfn.stop_execution(executionArn=arn, error="Test", cause="the pipeline was stopped")
        (instance,) = flow.instances_of(arn)
        deadline = time.monotonic() + 60
        while True:
            (instance,) = flow.instances_of(arn)
            if instance["State"]["Name"] in ("shutting-down", "terminated"):
                break
            assert time.monotonic() < deadline, instance["State"]
            time.sleep(0.5)
    finally:
        flow.stack.set_agent(images={ami: None})
    assert instance["StateReason"]["Code"] == "Client.InstanceInitiatedShutdown", instance["StateReason"]
    names = flow.transitions(arn)
    assert "Release" not in names and names[-1] == "RunBuild", names
    requests = flow.stack.shutdowns(instance["InstanceId"])
    assert [r["When"] for r in requests][-1] == "now", requests
    assert requests[-1]["Result"] == "terminated"
    # The build command never ran to its end: the instance went down under it.
    assert all(i["InstanceId"] != instance["InstanceId"] for i in flow.stack.agent_invocations())
