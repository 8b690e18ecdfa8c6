"""StopInstances/StartInstances on emulated instances: the agent is offline while stopped and
comes online after the first-boot delay (`delay=N`) or, after a start from stopped, the start
delay (`start=N`); stopping kills what the agent runs and forgets a scheduled OS shutdown."""

from __future__ import annotations

import json
import time

from tests.localstack.helpers import amis, wait_until


def _online(stack, instance_id):
    found = stack.client("ssm").describe_instance_information(
        Filters=[{"Key": "InstanceIds", "Values": [instance_id]}])["InstanceInformationList"]
    return bool(found)


def _launch(stack, agent):
    return stack.client("ec2").run_instances(
        ImageId=amis(stack)[0], MinCount=1, MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "ec2build:local-agent", "Value": agent}]}],
    )["Instances"][0]["InstanceId"]


def _state(stack, instance_id):
    reservations = stack.client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"]
    return reservations[0]["Instances"][0]


def test_agent_is_offline_while_stopped_and_online_after_the_start_delay(stack):
    ec2 = stack.client("ec2")
    instance = _launch(stack, "delay=2,start=1")
    assert not _online(stack, instance)
    first_boot = wait_until(lambda: _online(stack, instance), 10, what="first boot")
    assert first_boot
    launched = _state(stack, instance)["LaunchTime"]

    ec2.stop_instances(InstanceIds=[instance])
    assert _state(stack, instance)["State"]["Name"] == "stopped"
    assert not _online(stack, instance)

    time.sleep(1.1)  # LaunchTime has a resolution of one second
    started = time.monotonic()
    ec2.start_instances(InstanceIds=[instance])
    assert _state(stack, instance)["State"]["Name"] == "running"
    assert not _online(stack, instance), "the agent needs the start delay after a start"
    wait_until(lambda: _online(stack, instance), 10, what="agent online after the start")
    waited = time.monotonic() - started
    assert 0.9 <= waited < 2.0, f"start delay 1 s, first boot 2 s: took {waited:.1f} s"
    assert _state(stack, instance)["LaunchTime"] > launched, "LaunchTime is the time of the last start"


def test_start_delay_defaults_to_none(stack):
    ec2 = stack.client("ec2")
    instance = _launch(stack, "delay=1")
    wait_until(lambda: _online(stack, instance), 10, what="first boot")
    ec2.stop_instances(InstanceIds=[instance])
    ec2.start_instances(InstanceIds=[instance])
    assert _online(stack, instance)


def test_stopping_kills_the_running_command_and_forgets_a_scheduled_shutdown(stack, unique):
    ec2, ssm = stack.client("ec2"), stack.client("ssm")
    instance = _launch(stack, "online")
    name = f"sleeper-{unique}"
    content = {
        "schemaVersion": "2.2", "description": "test",
        "mainSteps": [{"action": "aws:runShellScript", "name": "linux",
                       "inputs": {"runCommand": ["shutdown -P +1", "sleep 30"]}}],
    }
    ssm.create_document(Content=json.dumps(content), Name=name, DocumentType="Command", DocumentFormat="JSON")
    command = ssm.send_command(DocumentName=name, InstanceIds=[instance])["Command"]["CommandId"]
    wait_until(lambda: stack.shutdowns(instance), 10, what="shutdown scheduled")
    ec2.stop_instances(InstanceIds=[instance])
    invocation = wait_until(
        lambda: (lambda i: i if i["Status"] not in ("Pending", "InProgress") else None)(
            ssm.get_command_invocation(CommandId=command, InstanceId=instance)), 10, what="command ended")
    assert invocation["Status"] == "Failed" and invocation["ResponseCode"] == 137
    assert stack.shutdowns(instance)[-1]["Result"] == "forgotten: the instance stopped"
