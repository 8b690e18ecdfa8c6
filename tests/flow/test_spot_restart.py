"""Spot interruption is a restart (issue 11): the document watches the instance metadata for a
spot interruption notice (IMDSv2), reports SpotInterrupted and stops the build; the state machine
releases that instance and builds again on a new one (on demand for spot-then-on-demand, else
spot), with a new ClientToken, at most SpotRestarts times.

The local stack posts the notice in the emulated instance's metadata (stack.spot_interrupt,
tests/localstack/ext/ec2_spot.py) and terminates the instance when the notice period ends."""

from __future__ import annotations

import hashlib
import json
import time

from tests.flow.test_build_flow import SUCCESS_PATH, failure, launch_parameters
from tests.flow.test_instance_shutdown import wait_for_state

# Entered again after a restart, from SpotInterrupted? (RunBuild caught SpotInterrupted).
RESTART_PATH = ["SpotInterrupted?", "PrepareRestart", "ReleaseInterrupted", "Launch", "WaitForAgent", "CheckAgent",
                "AgentOnline?", "RunBuild"]


def interrupt_running_build(flow, execution_arn: str, notice_seconds: float = 30) -> str:
    """Waits until the build command of the execution's newest instance runs, then posts a spot
    interruption notice for that instance; returns its id."""
    deadline = time.monotonic() + 60
    while True:
        wait_for_state(flow, execution_arn, "RunBuild")
        running = [i["InstanceId"] for i in flow.stack.agent_invocations() if i["Running"]]
        current = [i["InstanceId"] for i in flow.instances_of(execution_arn)
                   if i["State"]["Name"] == "running" and i["InstanceId"] in running]
        if current:
            break
        assert time.monotonic() < deadline, f"no build running for {execution_arn}"
        time.sleep(0.2)
    time.sleep(1)  # the watcher starts right after the configuration checks
    flow.stack.spot_interrupt(current[0], notice_seconds=notice_seconds)
    return current[0]


def instance(flow, execution_arn: str, instance_id: str) -> dict:
    (found,) = [i for i in flow.instances_of(execution_arn) if i["InstanceId"] == instance_id]
    return found


def test_an_interrupted_spot_build_is_restarted_on_demand_with_a_new_client_token(flow):
    arn = flow.start(flow.execution_input(capacity="spot-then-on-demand", Command="sleep 6\necho built > out.txt",
                                          OutputArtifacts=flow.output_location("BuildOutput"),
                                          OutputArtifactPath="out.txt"))
    interrupted = interrupt_running_build(flow, arn)
    d = flow.wait(arn, 180)
    assert d["status"] == "SUCCEEDED", d
    output = json.loads(d["output"])
    names = flow.transitions(arn)
    print(f"state transitions of a build restarted once: {len(names)}")
    assert names == SUCCESS_PATH[:8] + RESTART_PATH + SUCCESS_PATH[8:], names
    assert output["Restart"]["Count"] == 1 and output["Restart"]["Instances"].split() == [interrupted], output
    assert output["Restart"]["Reason"].startswith(f"Spot interruption notice for {interrupted}: terminate at "), output
    assert output["InstanceId"] != interrupted
    assert output["Build"]["Outputs"][0]["Name"] == "BuildOutput"
    # The first launch on spot, the second on demand, each with its own ClientToken.
    first, second = launch_parameters(flow, arn)
    assert first["InstanceMarketOptions"]["MarketType"] == "spot" and second["InstanceMarketOptions"] == {}
    assert first["ClientToken"] == hashlib.sha256(f"{arn}/spot/0/0".encode()).hexdigest()
    assert second["ClientToken"] == hashlib.sha256(f"{arn}/on-demand/0/0/restart-1".encode()).hexdigest()
    assert "InstanceLifecycle" not in instance(flow, arn, output["InstanceId"])
    # Both released: the interrupted one by ReleaseInterrupted, before its notice ran out.
    for i in flow.instances_of(arn):
        assert i["State"]["Name"] in ("shutting-down", "terminated"), i
    assert instance(flow, arn, interrupted)["StateReason"]["Code"] != "Server.SpotInstanceTermination"


def test_a_spot_build_is_restarted_on_spot_and_a_repeated_client_token_would_not_launch(flow):
    arn = flow.start(flow.execution_input(capacity="spot", Command="sleep 6"))
    interrupted = interrupt_running_build(flow, arn)
    d = flow.wait(arn, 180)
    assert d["status"] == "SUCCEEDED", d
    first, second = launch_parameters(flow, arn)
    assert first["InstanceMarketOptions"]["MarketType"] == second["InstanceMarketOptions"]["MarketType"] == "spot"
    assert first["ClientToken"] != second["ClientToken"]
    ids = [i["InstanceId"] for i in flow.instances_of(arn)]
    assert len(ids) == 2 and interrupted in ids
    # What the new token avoids: EC2 (and the local stack) answer a repeated token with the
    # first launch's instance, here the interrupted one.
    again = flow.ec2.run_instances(ImageId=flow.linux_amis[0], MinCount=1, MaxCount=1, InstanceType="t3.large",
                                   SubnetId=flow.subnets[0], ClientToken="repeat-" + arn[-12:])
    repeated = flow.ec2.run_instances(ImageId=flow.linux_amis[0], MinCount=1, MaxCount=1, InstanceType="t3.large",
                                      SubnetId=flow.subnets[0], ClientToken="repeat-" + arn[-12:])
    assert again["Instances"][0]["InstanceId"] == repeated["Instances"][0]["InstanceId"]
    try:
        flow.ec2.run_instances(ImageId=flow.linux_amis[0], MinCount=1, MaxCount=1, InstanceType="t3.large",
                               SubnetId=flow.subnets[0], ClientToken="repeat-" + arn[-12:],
                               InstanceMarketOptions={"MarketType": "spot"})
        raise AssertionError("a repeated ClientToken with another market launched")
    except flow.ec2.exceptions.ClientError as e:
        assert e.response["Error"]["Code"] == "IdempotentParameterMismatch"
    finally:
        flow.ec2.terminate_instances(InstanceIds=[again["Instances"][0]["InstanceId"]])


def test_an_interruption_beyond_spot_restarts_fails_the_build_and_releases(flow):
    machine = flow.create_state_machine({**flow.substitutions, "SpotRestarts": "0"})
    arn = flow.start(flow.execution_input(capacity="spot", Command="sleep 60"), state_machine=machine)
    interrupted = interrupt_running_build(flow, arn)
    d = flow.wait(arn, 120)
    error, cause = failure(d)
    assert error == "SpotInterrupted"
    assert cause["Stage"] == "build" and cause["InstanceId"] == interrupted
    assert cause["Cause"].startswith(f"Spot interruption notice for {interrupted}: terminate at "), cause
    assert "The build is not restarted again: it was restarted 0 times after spot interruptions, the most allowed (SpotRestarts 0)" in cause["Cause"]
    names = flow.transitions(arn)
    assert names[8:] == ["SpotInterrupted?", "SpotRestartsUsed", "FindCommand", "Release?", "Release", "Outcome?",
                         "AddCommandToFailure", "Failed"], names
    (only,) = flow.instances_of(arn)
    assert only["State"]["Name"] in ("shutting-down", "terminated")
