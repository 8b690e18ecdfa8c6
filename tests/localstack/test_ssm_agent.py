"""SSM Run Command on emulated instances: targeting, the local agent, statuses, output."""

from __future__ import annotations

import json
import os
import time

import pytest
from botocore.exceptions import ClientError

from tests.localstack.helpers import amis, wait_until

FINAL = ("Success", "Failed", "TimedOut", "Cancelled")


def _amis(stack):
    return amis(stack)


def _instance(stack, image_id=None, tags=None):
    ec2 = stack.client("ec2")
    kwargs = {}
    if tags:
        kwargs["TagSpecifications"] = [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]
    image_id = image_id or _amis(stack)[0]
    return ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1, **kwargs)["Instances"][0]["InstanceId"]


def _document(stack, name, commands, parameters=None, timeout=None, extra_steps=()):
    inputs = {"runCommand": commands}
    if timeout is not None:
        inputs["timeoutSeconds"] = timeout
    content = {
        "schemaVersion": "2.2",
        "description": "test",
        "parameters": parameters or {},
        "mainSteps": [
            {
                "action": "aws:runPowerShellScript",
                "name": "windows",
                "precondition": {"StringEquals": ["platformType", "Windows"]},
                "inputs": {"runCommand": ["Write-Output $env:SSM_Message"]},
            },
            {"action": "aws:runShellScript", "name": "linux", "precondition": {"StringEquals": ["platformType", "Linux"]}, "inputs": inputs},
            *extra_steps,
        ],
    }
    stack.client("ssm").create_document(Content=json.dumps(content), Name=name, DocumentType="Command", DocumentFormat="JSON")
    return name


def _wait(stack, command_id, instance_id, plugin="linux", timeout=20):
    ssm = stack.client("ssm")
    return wait_until(
        lambda: (lambda inv: inv if inv["Status"] in FINAL else None)(
            ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id, PluginName=plugin)
        ),
        timeout,
        what="command to finish",
    )


MESSAGE = {"type": "String", "interpolationType": "ENV_VAR", "allowedPattern": "^[^\\r\\n]*$", "default": "hello"}


def test_describe_instance_information_platform_and_agent_switches(stack, unique):
    linux, windows = _amis(stack)
    lin = _instance(stack, linux)
    win = _instance(stack, windows)
    never = _instance(stack, linux, tags={"ec2build:local-agent": "offline"})
    later = _instance(stack, linux, tags={"ec2build:local-agent": "delay=1"})
    ssm = stack.client("ssm")

    def info(ids):
        return {
            i["InstanceId"]: i
            for i in ssm.describe_instance_information(Filters=[{"Key": "InstanceIds", "Values": ids}])["InstanceInformationList"]
        }

    now = info([lin, win, never, later])
    assert now[lin]["PingStatus"] == "Online" and now[lin]["PlatformType"] == "Linux"
    assert now[win]["PlatformType"] == "Windows"
    assert never not in now and later not in now
    wait_until(lambda: later in info([later]), 5, what="delayed agent online")
    assert never not in info([never])
    # Per-image switch through the test API (used for instances the product launches).
    try:
        stack.set_agent(images={windows: "offline"})
        assert win not in info([win])
        assert lin in info([lin])
    finally:
        stack.set_agent(images={windows: None})
    stack.client("ec2").terminate_instances(InstanceIds=[lin])
    assert lin not in info([lin])


def test_send_command_runs_the_linux_step_with_env_var_parameters(stack, unique):
    target = _instance(stack)
    other = _instance(stack)
    doc = _document(
        stack,
        f"doc-{unique}",
        [
            'printf "%s\\n" "$SSM_Message"',
            'echo "count=$SSM_Count"',
            'echo "instance=$AWS_SSM_INSTANCE_ID region=$AWS_SSM_REGION_NAME"',
            "aws s3api list-buckets --query 'length(Buckets)' --output text >/dev/null && echo cli-ok",
            "echo to-stderr >&2",
        ],
        parameters={"Message": MESSAGE, "Count": {"type": "String", "interpolationType": "ENV_VAR", "default": "7"}},
    )
    ssm = stack.client("ssm")
    message = "it's $(whoami) `id` \"quoted\" ; rm -rf /"
    cmd = ssm.send_command(DocumentName=doc, InstanceIds=[target], Parameters={"Message": [message]})["Command"]
    assert cmd["InstanceIds"] == [target] and cmd["Status"] in ("Pending", "InProgress")
    inv = _wait(stack, cmd["CommandId"], target)
    assert inv["Status"] == "Success" and inv["ResponseCode"] == 0, inv
    lines = inv["StandardOutputContent"].splitlines()
    assert lines[0] == message  # literal: not interpreted by the shell
    assert lines[1] == "count=7"  # default applied
    assert lines[2] == f"instance={target} region=us-east-1"
    assert lines[3] == "cli-ok"
    assert inv["StandardErrorContent"] == "to-stderr\n"
    # The Windows step was skipped by its precondition.
    win = ssm.get_command_invocation(CommandId=cmd["CommandId"], InstanceId=target, PluginName="windows")
    assert win["Status"] == "Success" and "skipped" in win["StandardOutputContent"]
    # Only the named instance got the command.
    invocations = ssm.list_command_invocations(CommandId=cmd["CommandId"], Details=True)["CommandInvocations"]
    assert [i["InstanceId"] for i in invocations] == [target]
    assert [p["Name"] for p in invocations[0]["CommandPlugins"]] == ["windows", "linux"]
    assert ssm.list_command_invocations(InstanceId=other)["CommandInvocations"] == []
    listed = ssm.list_commands(CommandId=cmd["CommandId"])["Commands"][0]
    assert listed["Status"] == "Success" and listed["CompletedCount"] == 1 and listed["TargetCount"] == 1
    # Without PluginName, a two-step document is ambiguous, as on AWS.
    with pytest.raises(ClientError) as err:
        ssm.get_command_invocation(CommandId=cmd["CommandId"], InstanceId=target)
    assert err.value.response["Error"]["Code"] == "InvalidPluginName"


def test_parameter_validation_and_instance_validation(stack, unique):
    target = _instance(stack)
    offline = _instance(stack, tags={"ec2build:local-agent": "offline"})
    doc = _document(stack, f"doc-{unique}", ["true"], parameters={"Message": MESSAGE, "Required": {"type": "String"}})
    ssm = stack.client("ssm")
    cases = [
        ({"Message": ["two\nlines"], "Required": ["x"]}, "InvalidParameters"),
        ({"Message": ["ok"]}, "InvalidParameters"),  # Required has no default
        ({"Required": ["x"], "Unknown": ["y"]}, "InvalidParameters"),
    ]
    for params, code in cases:
        with pytest.raises(ClientError) as err:
            ssm.send_command(DocumentName=doc, InstanceIds=[target], Parameters=params)
        assert err.value.response["Error"]["Code"] == code, params
    with pytest.raises(ClientError) as err:
        ssm.send_command(DocumentName=doc, InstanceIds=[offline], Parameters={"Required": ["x"]})
    assert err.value.response["Error"]["Code"] == "InvalidInstanceId"
    with pytest.raises(ClientError) as err:
        ssm.send_command(DocumentName=f"missing-{unique}", InstanceIds=[target])
    assert err.value.response["Error"]["Code"] == "InvalidDocument"


def test_failure_exit_code_and_output_truncation(stack, unique):
    target = _instance(stack)
    doc = _document(stack, f"doc-{unique}", ["head -c 30000 /dev/zero | tr '\\0' x", "echo", "exit 42"])
    ssm = stack.client("ssm")
    cmd = ssm.send_command(DocumentName=doc, InstanceIds=[target])["Command"]
    inv = _wait(stack, cmd["CommandId"], target)
    assert inv["Status"] == "Failed" and inv["ResponseCode"] == 42
    assert len(inv["StandardOutputContent"]) == 24000
    plugin = ssm.list_command_invocations(CommandId=cmd["CommandId"], Details=True)["CommandInvocations"][0]["CommandPlugins"][1]
    assert plugin["Status"] == "Failed" and plugin["ResponseCode"] == 42 and len(plugin["Output"]) == 2500
    assert ssm.list_commands(CommandId=cmd["CommandId"])["Commands"][0]["Status"] == "Failed"


def test_step_timeout(stack, unique):
    target = _instance(stack)
    doc = _document(stack, f"doc-{unique}", ["echo started", "sleep 30"], timeout=1)
    ssm = stack.client("ssm")
    started = time.monotonic()
    cmd = ssm.send_command(DocumentName=doc, InstanceIds=[target])["Command"]
    inv = _wait(stack, cmd["CommandId"], target)
    assert inv["Status"] == "TimedOut" and inv["StatusDetails"] == "ExecutionTimedOut"
    assert inv["StandardOutputContent"] == "started\n"
    assert time.monotonic() - started < 10


def test_cancel_and_termination_kill_the_script(stack, unique, tmp_path):
    marker = tmp_path / "survived"
    doc = _document(stack, f"doc-{unique}", ["echo running", f"sleep 2 && touch {marker}"])
    ssm = stack.client("ssm")
    a, b = _instance(stack), _instance(stack)
    cmd_a = ssm.send_command(DocumentName=doc, InstanceIds=[a])["Command"]
    cmd_b = ssm.send_command(DocumentName=doc, InstanceIds=[b])["Command"]
    wait_until(
        lambda: "running" in ssm.get_command_invocation(CommandId=cmd_a["CommandId"], InstanceId=a, PluginName="linux")["StandardOutputContent"]
        and "running" in ssm.get_command_invocation(CommandId=cmd_b["CommandId"], InstanceId=b, PluginName="linux")["StandardOutputContent"],
        10,
        what="scripts running",
    )
    assert ssm.get_command_invocation(CommandId=cmd_a["CommandId"], InstanceId=a, PluginName="linux")["Status"] == "InProgress"
    ssm.cancel_command(CommandId=cmd_a["CommandId"])
    stack.client("ec2").terminate_instances(InstanceIds=[b])
    inv_a = _wait(stack, cmd_a["CommandId"], a)
    inv_b = _wait(stack, cmd_b["CommandId"], b)
    assert inv_a["Status"] == "Cancelled"
    assert inv_b["Status"] == "Failed"
    time.sleep(2.5)
    assert not marker.exists(), "a killed script kept running"


def test_cloudwatch_output(stack, unique):
    target = _instance(stack)
    doc = _document(stack, f"doc-{unique}", ["echo line-1", "echo line-2", "echo oops >&2"])
    ssm = stack.client("ssm")
    group = f"/ec2-build/{unique}/builds"
    cmd = ssm.send_command(
        DocumentName=doc,
        InstanceIds=[target],
        CloudWatchOutputConfig={"CloudWatchLogGroupName": group, "CloudWatchOutputEnabled": True},
    )["Command"]
    _wait(stack, cmd["CommandId"], target)
    logs = stack.client("logs")
    prefix = f"{cmd['CommandId']}/{target}/linux"
    out = logs.get_log_events(logGroupName=group, logStreamName=prefix + "/stdout", startFromHead=True)["events"]
    err = logs.get_log_events(logGroupName=group, logStreamName=prefix + "/stderr", startFromHead=True)["events"]
    assert [e["message"] for e in out] == ["line-1", "line-2"]
    assert [e["message"] for e in err] == ["oops"]
    # Default group when none is named: /aws/ssm/<document>.
    cmd2 = ssm.send_command(DocumentName=doc, InstanceIds=[target], CloudWatchOutputConfig={"CloudWatchOutputEnabled": True})["Command"]
    _wait(stack, cmd2["CommandId"], target)
    streams = logs.describe_log_streams(logGroupName=f"/aws/ssm/{doc}")["logStreams"]
    assert f"{cmd2['CommandId']}/{target}/linux/stdout" in [s["logStreamName"] for s in streams]


def test_targets_by_tag_and_work_folder_per_instance(stack, unique):
    a = _instance(stack, tags={"Role": unique})
    b = _instance(stack, tags={"Role": unique})
    _instance(stack, tags={"Role": "other"})
    doc = _document(stack, f"doc-{unique}", ["echo x > here.txt", "pwd"])
    ssm = stack.client("ssm")
    cmd = ssm.send_command(DocumentName=doc, Targets=[{"Key": "tag:Role", "Values": [unique]}])["Command"]
    assert sorted(cmd["InstanceIds"]) == sorted([a, b])
    for iid in (a, b):
        inv = _wait(stack, cmd["CommandId"], iid)
        folder = inv["StandardOutputContent"].strip()
        assert os.path.basename(folder) == iid and os.path.exists(os.path.join(folder, "here.txt"))


def test_send_command_through_the_aws_cli(stack, unique):
    target = _instance(stack)
    doc = _document(stack, f"doc-{unique}", ['echo "$SSM_Message"'], parameters={"Message": MESSAGE})
    out = stack.aws_cli(
        "ssm", "send-command", "--document-name", doc, "--instance-ids", target, "--parameters", '{"Message": ["from cli"]}'
    )
    command_id = json.loads(out.stdout)["Command"]["CommandId"]
    inv = _wait(stack, command_id, target)
    assert inv["StandardOutputContent"] == "from cli\n"
    listed = json.loads(stack.aws_cli("ssm", "list-command-invocations", "--command-id", command_id, "--details").stdout)
    assert listed["CommandInvocations"][0]["Status"] == "Success"


def test_shutdown_on_an_emulated_instance_is_its_own_never_this_machines(stack, unique):
    # Scripts find the emulated instance's `shutdown` first on PATH; it stops or terminates that
    # instance in moto (by the launch template's InstanceInitiatedShutdownBehavior), with the
    # state reason of an OS shutdown, and a scheduled one is only recorded until its time.
    ec2 = stack.client("ec2")
    template = ec2.create_launch_template(
        LaunchTemplateName=unique, LaunchTemplateData={"InstanceInitiatedShutdownBehavior": "terminate"})
    instance_id = ec2.run_instances(ImageId=_amis(stack)[0], MinCount=1, MaxCount=1, LaunchTemplate={
        "LaunchTemplateId": template["LaunchTemplate"]["LaunchTemplateId"]})["Instances"][0]["InstanceId"]
    plain_id = _instance(stack)
    name = _document(stack, unique, [
        'command -v shutdown', 'shutdown -h +7 "scheduled"', 'shutdown -h now "at once"', 'sleep 30', 'echo still-running'])
    ssm = stack.client("ssm")
    command_id = ssm.send_command(DocumentName=name, InstanceIds=[instance_id, plain_id])["Command"]["CommandId"]
    inv = _wait(stack, command_id, instance_id)
    assert inv["StandardOutputContent"].splitlines()[0].endswith("tests/localstack/ext/instance_bin/shutdown")
    assert "still-running" not in inv["StandardOutputContent"] and inv["Status"] == "Failed"
    scheduled, now = stack.shutdowns(instance_id)
    assert (scheduled["When"], scheduled["DelaySeconds"], scheduled["Message"]) == ("+7", 420, "scheduled")
    assert (now["When"], now["DelaySeconds"], now["Result"]) == ("now", 0, "terminated")
    described = ec2.describe_instances(InstanceIds=[instance_id, plain_id])["Reservations"]
    states = {i["InstanceId"]: i for r in described for i in r["Instances"]}
    assert states[instance_id]["State"]["Name"] == "terminated"
    assert states[instance_id]["StateReason"]["Code"] == "Client.InstanceInitiatedShutdown"
    _wait(stack, command_id, plain_id)
    assert wait_until(lambda: ec2.describe_instances(InstanceIds=[plain_id])["Reservations"][0]["Instances"][0]["State"]["Name"] == "stopped" or None,
                      10, what="the instance without a template to stop (moto's default behaviour)")
