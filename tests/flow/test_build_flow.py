"""The state machine and the Linux steps of the SSM document, executed for real in the local
stack: the local agent runs the document's bash step on this machine, which downloads from and
uploads to the emulated S3 and reports to the waiting Step Functions task."""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.deploy import create_state_machine, render_definition

SUCCESS_PATH = [
    "Prepare", "ImageFromParameter?", "DescribeImage", "Launch",
    "WaitForAgent", "CheckAgent", "AgentOnline?", "RunBuild", "Release?", "Release",
    "Outcome?", "Succeeded",
]


def assert_released(flow, execution_arn, expect_instance=True):
    instances = flow.instances_of(execution_arn)
    if not expect_instance:
        assert instances == []
        return
    assert len(instances) == 1, instances
    assert instances[0]["State"]["Name"] in ("shutting-down", "terminated"), instances[0]["State"]


def failure(d):
    assert d["status"] == "FAILED", d
    return d["error"], json.loads(d["cause"])


def document_cause(cause):
    """The document's own SendTaskFailure cause (JSON text), as carried into the execution's cause."""
    assert cause["Cause"] is not None, "the document's cause was lost"
    return json.loads(cause["Cause"])


def test_command_build_with_two_inputs_and_an_output(flow):
    source = flow.put_artifact("SourceOutput", {
        "build.sh": ("#!/bin/bash\nset -e\nmkdir -p dist\necho \"built from $(cat version.txt)\" > dist/app.txt\n", 0o755),
        "version.txt": "1.2.3\n",
    })
    extra = flow.put_artifact("Extra", {"extra.txt": "second input\n"})
    out = flow.output_location("BuildOutput")
    inp = flow.execution_input(
        Command="./build.sh\ncp Extra/extra.txt dist/\necho \"token visible: ${SSM_TaskToken:-no}\"",
        InputArtifacts=f"{source} {extra}", OutputArtifacts=out, OutputArtifactPath="dist",
    )
    d = flow.run(inp)
    assert d["status"] == "SUCCEEDED", d
    result = json.loads(d["output"])
    assert result["Status"] == "SUCCEEDED" and result["Stage"] == "done"
    assert result["InstanceId"].startswith("i-")
    assert result["CommandId"]
    assert result["Log"] == {"Group": "/ec2-build/flowtest/builds", "Stream": f"{result['CommandId']}/{result['InstanceId']}/"}
    outputs = result["Build"]["Outputs"]
    assert [o["Name"] for o in outputs] == ["BuildOutput"]
    head = flow.s3.head_object(Bucket=outputs[0]["Bucket"], Key=outputs[0]["Key"])
    assert head["ServerSideEncryption"] == "aws:kms"
    z = flow.read_zip(outputs[0])
    assert sorted(z.namelist()) == ["dist/app.txt", "dist/extra.txt"]
    assert z.read("dist/app.txt") == b"built from 1.2.3\n"
    assert result["Build"]["Packages"] == [] and result["Build"]["ImageUri"] == ""
    assert_released(flow, d["executionArn"])
    # The tags the keeper finds the build's pipeline action and deadline by (docs/contracts.md).
    (instance,) = flow.instances_of(d["executionArn"])
    tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
    assert tags["ec2-build:pipeline"] == inp["Pipeline"]["Name"]
    assert tags["ec2-build:pipeline-execution-id"] == inp["Pipeline"]["ExecutionId"]
    assert (tags["ec2-build:stage"], tags["ec2-build:action"]) == ("Build", "Linux")
    assert tags["ec2-build:build-seconds"] == str(inp["Timeouts"]["BuildSeconds"])
    # The task token never reaches the build's own commands (nor, therefore, the log).
    inv = flow.ssm.get_command_invocation(CommandId=result["CommandId"], InstanceId=result["InstanceId"], PluginName="LinuxBuild")
    assert "token visible: no" in inv["StandardOutputContent"]


def test_failing_command_reports_exit_code_and_tail(flow):
    source = flow.put_artifact("SourceOutput", {"README": "x"})
    inp = flow.execution_input(
        Command="echo compiling\necho 'error: something broke' >&2\nexit 3\necho never",
        InputArtifacts=source, OutputArtifacts=flow.output_location("BuildOutput"), OutputArtifactPath="dist",
    )
    d = flow.run(inp)
    error, cause = failure(d)
    assert error == "BuildFailed"
    assert cause["Stage"] == "build" and cause["Error"] == "BuildFailed"
    assert cause["InstanceId"].startswith("i-") and cause["CommandId"]
    assert cause["Log"]["Stream"] == f"{cause['CommandId']}/{cause['InstanceId']}/"
    assert_released(flow, d["executionArn"])
    # What the agent saw. The step exits with the command's code, unless the release (which
    # follows the report at once) terminates the instance first: 137, as on AWS.
    inv = flow.ssm.get_command_invocation(CommandId=cause["CommandId"], InstanceId=cause["InstanceId"], PluginName="LinuxBuild")
    assert inv["ResponseCode"] in (3, 137) and inv["Status"] == "Failed"
    assert "error: something broke" in inv["StandardErrorContent"] + inv["StandardOutputContent"]
    assert "build failed: Command failed with exit code 3" in inv["StandardErrorContent"]
    build = document_cause(cause)
    assert build["Step"] == "build" and build["ExitCode"] == 3
    assert "compiling" in build["Tail"] and "error: something broke" in build["Tail"]
    assert "never" not in build["Tail"]


def test_missing_output_path_is_an_upload_failure(flow):
    source = flow.put_artifact("SourceOutput", {"README": "x"})
    inp = flow.execution_input(
        Command="true", InputArtifacts=source, OutputArtifacts=flow.output_location("BuildOutput"), OutputArtifactPath="dist/*.whl",
    )
    d = flow.run(inp)
    error, cause = failure(d)
    assert error == "UploadFailed" and cause["Stage"] == "upload"
    assert_released(flow, d["executionArn"])
    assert "matches nothing: dist/*.whl" in document_cause(cause)["Tail"]


def test_bad_input_location_is_a_download_failure(flow):
    inp = flow.execution_input(Command="true", InputArtifacts=f"SourceOutput=s3://{flow.bucket}/does/not/exist")
    d = flow.run(inp)
    error, cause = failure(d)
    assert error == "DownloadFailed" and cause["Stage"] == "build"
    assert_released(flow, d["executionArn"])
    assert document_cause(cause)["Step"] == "download"


def test_docker_build_pushes_to_ecr_and_writes_image_files(flow):
    source = flow.put_artifact("SourceOutput", {"Dockerfile": "FROM scratch\n"})
    target = "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app:1.2"
    before = len(flow.recorded())
    inp = flow.execution_input(
        BuildKind="docker", BuildTarget=target, InputArtifacts=source, OutputArtifacts=flow.output_location("ImageOutput"),
    )
    d = flow.run(inp)
    assert d["status"] == "SUCCEEDED", d
    build = json.loads(d["output"])["Build"]
    digest = "sha256:" + "ab" * 32
    assert build["ImageUri"] == target and build["ImageDigest"] == digest
    calls = flow.recorded()[before:]
    assert ["docker", "build", "--tag", target, "."] in calls
    login = ["docker", "login", "--username", "AWS", "--password-stdin", "123456789012.dkr.ecr.us-east-1.amazonaws.com"]
    assert calls.index(login) < calls.index(["docker", "build", "--tag", target, "."])  # logged in before the build
    assert ["docker-login-password-received", True] in calls
    assert ["docker", "push", target] in calls
    z = flow.read_zip(build["Outputs"][0])
    uri = "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app@" + digest
    assert json.loads(z.read("imageDetail.json")) == {"ImageURI": uri}
    assert json.loads(z.read("imagedefinitions.json")) == [{"name": "app", "imageUri": uri}]
    assert_released(flow, d["executionArn"])


def test_docker_build_logs_in_to_the_registry_of_an_ecr_base_image_first(flow):
    base = "210987654321.dkr.ecr.eu-west-1.amazonaws.com"
    source = flow.put_artifact("SourceOutput", {"Dockerfile": f"FROM {base}/base/windows:ltsc2022 AS build\nFROM scratch\n"})
    before = len(flow.recorded())
    d = flow.run(flow.execution_input(BuildKind="docker", BuildTarget="local/app:1", InputArtifacts=source))
    assert d["status"] == "SUCCEEDED", d
    calls = flow.recorded()[before:]
    login = ["docker", "login", "--username", "AWS", "--password-stdin", base]
    assert calls.index(login) < calls.index(["docker", "build", "--tag", "local/app:1", "."])
    assert not [c for c in calls if c[:2] == ["docker", "push"]]  # not an ECR target: nothing pushed
    assert_released(flow, d["executionArn"])


def test_conda_build_makes_the_channel_the_output(flow):
    source = flow.put_artifact("SourceOutput", {"recipe/meta.yaml": "package: {name: mypkg, version: '1.0'}\n"})
    before = len(flow.recorded())
    inp = flow.execution_input(
        BuildKind="conda", BuildTarget="recipe", InputArtifacts=source, OutputArtifacts=flow.output_location("Channel"),
    )
    d = flow.run(inp)
    assert d["status"] == "SUCCEEDED", d
    build = json.loads(d["output"])["Build"]
    assert build["Packages"] == ["linux-64/mypkg-1.0-py311_0.conda"]
    (call,) = [c for c in flow.recorded()[before:] if c[0] == "conda"]
    assert call[1:4] == ["build", "--no-anaconda-upload", "--output-folder"]
    assert call[4].endswith("/channel") and call[5].endswith("/src/recipe")
    assert sorted(flow.read_zip(build["Outputs"][0]).namelist()) == ["linux-64/mypkg-1.0-py311_0.conda", "linux-64/repodata.json"]
    assert_released(flow, d["executionArn"])


def test_configuration_error_for_a_path_leaving_the_source(flow):
    inp = flow.execution_input(Command="true", WorkingDirectory="src/../../etc")
    d = flow.run(inp)
    error, cause = failure(d)
    assert error == "BuildFailed" and cause["Error"] == "ConfigurationError"
    assert_released(flow, d["executionArn"])
    assert document_cause(cause)["Step"] == "configuration"


def test_agent_never_online_times_out_and_releases(flow):
    ami = flow.linux_amis[1]
    d = flow.run_with_agent(ami, "offline", Command="true")
    error, cause = failure(d)
    assert error == "AgentTimeout" and cause["Stage"] == "agent"
    assert "did not come online after 5 checks" in cause["Cause"]
    names = flow.transitions(d["executionArn"])
    assert names.count("CheckAgent") == 5  # bounded: AgentPollAttempts
    assert_released(flow, d["executionArn"])


def test_agent_coming_online_late_is_waited_for_with_backoff(flow):
    ami = flow.linux_amis[2]
    d = flow.run_with_agent(ami, "delay=2.5", Command="true")
    assert d["status"] == "SUCCEEDED", d
    names = flow.transitions(d["executionArn"])
    assert names.count("CheckAgent") >= 2 and "AgentBackoff" in names
    assert_released(flow, d["executionArn"])


def test_acquire_failure_names_the_stage_and_launches_nothing(flow):
    sm = flow.create_state_machine({**flow.substitutions, "SubnetIds": "subnet-00000000000000000"})
    d = flow.run(flow.execution_input(Command="true"), state_machine=sm)
    error, cause = failure(d)
    assert error == "AcquireFailed" and cause["Stage"] == "acquire" and cause["InstanceId"] == ""
    assert_released(flow, d["executionArn"], expect_instance=False)


def test_build_timeout_releases_the_instance(flow):
    inp = flow.execution_input(Command="sleep 30", build_seconds=3, heartbeat_seconds=60)
    d = flow.run(inp, timeout=60)
    error, cause = failure(d)
    assert error == "BuildTimeout" and cause["Error"] == "States.Timeout"
    # What SSM knows about the command is in the cause, with the command id for the log link.
    assert cause["CommandId"] and cause["Log"]["Stream"] == f"{cause['CommandId']}/{cause['InstanceId']}/"
    assert "SSM command status: " in cause["Cause"] and "Output of the document steps: " in cause["Cause"]
    assert_released(flow, d["executionArn"])


def test_windows_image_uses_the_windows_launch_template(flow):
    # The local agent runs no PowerShell: the Windows step fails without reporting, so the
    # heartbeat timeout ends the build. What matters here: the Windows template was chosen.
    inp = flow.execution_input(image_id=flow.windows_ami, Command="Write-Output hi", build_seconds=4, heartbeat_seconds=3)
    d = flow.run(inp, timeout=60)
    error, cause = failure(d)
    assert error == "BuildTimeout"
    # The agent's failure reaches the cause instead of a bare timeout.
    assert "SSM command status: Failed (Failed)" in cause["Cause"], cause["Cause"]
    assert "cannot run aws:runPowerShellScript" in cause["Cause"]
    launch = [e for e in flow.history(d["executionArn"]) if e["type"] == "TaskScheduled"
              and e["taskScheduledEventDetails"]["resource"] == "runInstances"]
    params = json.loads(launch[0]["taskScheduledEventDetails"]["parameters"])
    assert params["LaunchTemplate"]["LaunchTemplateId"] == flow.windows_template
    assert_released(flow, d["executionArn"])


def test_transitions_do_not_depend_on_build_length(flow):
    short = flow.start(flow.execution_input(Command="sleep 5"))
    long = flow.start(flow.execution_input(Command="sleep 60", build_seconds=300))
    d_short, d_long = flow.wait(short, 180), flow.wait(long, 180)
    assert d_short["status"] == d_long["status"] == "SUCCEEDED"
    assert flow.transitions(short) == flow.transitions(long) == SUCCESS_PATH
    print(f"state transitions of a successful build: {len(SUCCESS_PATH)}")
    assert_released(flow, short)
    assert_released(flow, long)


def test_failure_cause_is_capped_whole_json(flow):
    # 40 long lines of output: the document's cause stays whole JSON of at most 8,000
    # characters, so the execution's cause (which nests it) stays far below 32,768.
    source = flow.put_artifact("SourceOutput", {"README": "x"})
    inp = flow.execution_input(
        Command='for i in $(seq 1 60); do printf "line %s %s\\n" "$i" "$(head -c 900 /dev/zero | tr "\\0" "\\"")"; done\nexit 4',
        InputArtifacts=source,
    )
    d = flow.run(inp)
    error, cause = failure(d)
    assert error == "BuildFailed"
    assert len(cause["Cause"]) <= 8000
    build = document_cause(cause)
    assert build["ExitCode"] == 4 and "line 60" in build["Tail"]
    assert len(d["cause"]) < 32768


def launch_parameters(flow, execution_arn):
    return [json.loads(e["taskScheduledEventDetails"]["parameters"]) for e in flow.history(execution_arn)
            if e["type"] == "TaskScheduled" and e["taskScheduledEventDetails"]["resource"] == "runInstances"]


def test_one_launch_state_for_both_markets(flow):
    # The market comes from data: Prepare picks it from Capacity; spot-then-on-demand starts on spot.
    runs = {capacity: flow.start(flow.execution_input(capacity=capacity, Command="true"))
            for capacity in ("on-demand", "spot", "spot-then-on-demand")}
    for capacity, arn in runs.items():
        d = flow.wait(arn, 120)
        assert d["status"] == "SUCCEEDED", d
        market = "on-demand" if capacity == "on-demand" else "spot"
        (params,) = launch_parameters(flow, arn)
        # A ClientToken of its own per market (and type and subnet), as before the merge.
        assert params["ClientToken"] == hashlib.sha256(f"{arn}/{market}/0/0".encode()).hexdigest()
        (instance,) = flow.instances_of(arn)
        if market == "spot":
            assert params["InstanceMarketOptions"]["MarketType"] == "spot"
            assert instance.get("InstanceLifecycle") == "spot", instance
        else:
            assert params["InstanceMarketOptions"] == {}  # sent as nothing: an on-demand instance
            assert "InstanceLifecycle" not in instance, instance
        assert flow.transitions(arn) == SUCCESS_PATH
        assert_released(flow, arn)


def failing_release(flow):
    """The real definition with a TerminateInstances that fails at once (an unknown instance, no retries)."""
    definition = json.loads(render_definition(flow.substitutions))
    release = definition["States"]["Release"]
    del release["Parameters"]["InstanceIds.$"], release["Retry"]
    release["Parameters"]["InstanceIds"] = ["i-0000000000000000f"]
    return create_state_machine(flow.sfn, flow.substitutions, definition=json.dumps(definition))


def test_release_failure_wins_and_keeps_the_earlier_failure(flow):
    sm = failing_release(flow)
    good = flow.start(flow.execution_input(Command="true"), state_machine=sm)
    bad = flow.start(flow.execution_input(Command="echo broken >&2\nexit 3"), state_machine=sm)
    try:
        error, cause = failure(flow.wait(good, 120))
        assert error == "ReleaseFailed" and cause["Stage"] == "release"
        assert cause["Cause"].startswith(f"Terminating {cause['InstanceId']} failed after a successful build: "), cause
        # The command is still looked up for the log link.
        assert cause["CommandId"] and cause["Log"]["Stream"] == f"{cause['CommandId']}/{cause['InstanceId']}/"
        assert "EarlierFailure?" in flow.transitions(good) and "ReleaseFailedAfterSuccess" in flow.transitions(good)

        error, cause = failure(flow.wait(bad, 120))
        assert error == "ReleaseFailed" and cause["Stage"] == "release"
        assert cause["Cause"].startswith(f"Terminating {cause['InstanceId']} failed: "), cause
        before = json.loads(cause["Cause"].split(". Before that: ", 1)[1])
        assert before["Stage"] == "build" and before["Error"] == "BuildFailed" and document_cause(before)["ExitCode"] == 3
        assert "ReleaseFailedAfterFailure" in flow.transitions(bad)
    finally:
        for arn in (good, bad):
            ids = [i["InstanceId"] for i in flow.instances_of(arn)]
            if ids:
                flow.ec2.terminate_instances(InstanceIds=ids)
