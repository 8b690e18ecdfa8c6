"""The template against docs/contracts.md and the other parts: configuration properties, Lambda
environment, ASL placeholders, event patterns, launch settings."""

from __future__ import annotations

import base64
import re

import pytest

from template_helpers import ASL_FILE, PREPARE_ASL_FILE, Evaluator, load_template

CONTRACT_PROPERTIES = {  # docs/contracts.md, "Action configuration"
    "ImageId": True, "InstanceType": True, "BuildKind": False, "Command": False, "BuildTarget": False,
    "WorkingDirectory": False, "OutputArtifactPath": False, "TimeoutMinutes": False, "Capacity": False,
    "Pool": False,
}


@pytest.fixture(scope="module")
def template():
    return load_template()


def res(template, name):
    return template["Resources"][name]["Properties"]


def test_action_type_properties_match_the_contract(template):
    props = res(template, "BuildActionType")
    got = {p["Name"]: p["Required"] for p in props["ConfigurationProperties"]}
    assert got == CONTRACT_PROPERTIES
    for p in props["ConfigurationProperties"]:
        assert 0 < len(p["Description"]) <= 160, p["Name"]  # CodePipeline's limit
        assert p["Secret"] is False and p["Queryable"] is False
    assert props["InputArtifactDetails"] == {"MinimumCount": 0, "MaximumCount": 5}
    assert props["OutputArtifactDetails"] == {"MinimumCount": 0, "MaximumCount": 5}


def test_console_links(template):
    settings = Evaluator(template, {}).resolve(res(template, "BuildActionType")["Settings"])
    assert settings["ExecutionUrlTemplate"] == (
        "https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1"
        "#/v2/executions/details/{ExternalExecutionId}")
    assert settings["EntityUrlTemplate"].startswith(
        "https://eu-west-1.console.aws.amazon.com/systems-manager/documents/<BuildDocument>/")


def test_lambda_environment_matches_the_contract(template):
    ev = Evaluator(template, {})
    common = ev.resolve(template["Globals"]["Function"]["Environment"]["Variables"])
    assert common == {"STATE_MACHINE_ARN": "<BuildStateMachine>", "ACTION_CATEGORY": "Build",
                      "ACTION_PROVIDER": "EC2Build", "ACTION_VERSION": "1", "POLL_BATCH_SIZE": "10",
                      "HELD_JOBS_TABLE": "<HeldJobsTable>", "HELD_JOB_REFRESH_SECONDS": "300",
                      "POOLS": "[]"}
    completion = res(template, "CompletionFunction")["Environment"]["Variables"]
    assert {"COMPLETION_POLL_ATTEMPTS", "COMPLETION_POLL_DELAY_MS"} <= set(completion)
    for name in ("PollerFunction", "CompletionFunction"):
        props = res(template, name)
        assert props["CodeUri"] == f"../build/lambda/{name[:-len('Function')].lower()}/"
        assert props["LoggingConfig"]["LogFormat"] == "JSON"
    g = template["Globals"]["Function"]
    assert (g["Runtime"], g["Architectures"], g["Handler"]) == ("provided.al2023", ["arm64"], "bootstrap")


@pytest.mark.skipif(not ASL_FILE.exists(), reason="statemachine/build.asl.json not written yet")
def test_both_job_handling_functions_may_use_the_held_jobs_table_and_nothing_else_may(template):
    """The poller and the completion function hold and answer continuation jobs (the settings
    read HELD_JOBS_TABLE, which every function gets from Globals); the table keys records by
    execution ARN and expires them through its TTL attribute, as the DynamoDB adapter writes them."""
    table = res(template, "HeldJobsTable")
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [{"AttributeName": "execution_arn", "KeyType": "HASH"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    granted = {}
    for role in ("PollerRole", "CompletionRole", "KeeperRole", "StateMachineRole", "BuilderRole"):
        for policy in res(template, role).get("Policies", []):
            for st in policy["PolicyDocument"]["Statement"]:
                actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                if any(a.startswith("dynamodb:") for a in actions) and "PoolRegistryTable" not in str(st["Resource"]):
                    assert st["Resource"] == {"Fn::GetAtt": ["HeldJobsTable", "Arn"]}, (role, st)
                    granted[role] = sorted(actions)
    needed = ["dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Scan"]
    assert granted == {"PollerRole": needed, "CompletionRole": needed}


def test_the_pool_registry_is_used_by_the_workflows_and_the_keeper_only(template):
    """Builds claim, return and forget pool instances and the preparation workflow registers
    them (both run as StateMachineRole); the keeper recycles them. Claims read the sparse index
    Ready, which holds only ready items (docs/contracts.md, "Pool registry")."""
    table = res(template, "PoolRegistryTable")
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [{"AttributeName": "Pool", "KeyType": "HASH"},
                                  {"AttributeName": "InstanceId", "KeyType": "RANGE"}]
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "Ready"
    assert index["KeySchema"][0] == {"AttributeName": "ReadyPool", "KeyType": "HASH"}
    users = set()
    for role in ("PollerRole", "CompletionRole", "KeeperRole", "StateMachineRole", "BuilderRole"):
        for policy in res(template, role).get("Policies", []):
            for st in policy["PolicyDocument"]["Statement"]:
                if "PoolRegistryTable" in str(st["Resource"]):
                    users.add(role)
    assert users == {"KeeperRole", "StateMachineRole"}


def test_definition_substitutions_cover_exactly_the_asl_placeholders(template):
    placeholders = set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", ASL_FILE.read_text()))
    given = set(res(template, "BuildStateMachine")["DefinitionSubstitutions"])
    assert placeholders - given == set(), "placeholders without a value"
    assert given - placeholders == set(), "values for placeholders the ASL does not have"


def test_event_rules(template):
    poller = res(template, "PollerFunction")["Events"]
    started = poller["ActionStarted"]["Properties"]["Pattern"]
    assert started["detail-type"] == ["CodePipeline Action Execution State Change"]
    assert started["detail"]["state"] == ["STARTED"]
    assert started["detail"]["type"]["owner"] == ["Custom"]
    assert started["detail"]["type"]["provider"] == [{"Ref": "ActionProvider"}]
    assert poller["Sweep"]["Properties"]["Schedule"] == "rate(1 minute)"
    finished = res(template, "CompletionFunction")["Events"]["ExecutionFinished"]["Properties"]["Pattern"]
    assert finished["source"] == ["aws.states"]
    assert finished["detail"]["stateMachineArn"] == [{"Ref": "BuildStateMachine"}]
    assert set(finished["detail"]["status"]) == {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


def test_security_group_has_no_ingress(template):
    sg = res(template, "BuilderSecurityGroup")
    assert "SecurityGroupIngress" not in sg
    assert not [r for r in template["Resources"].values() if r["Type"] == "AWS::EC2::SecurityGroupIngress"]


@pytest.mark.parametrize("name", ["LinuxLaunchTemplate", "WindowsLaunchTemplate"])
def test_launch_templates_imdsv2_and_encrypted_volumes(template, name):
    data = res(template, name)["LaunchTemplateData"]
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert data["BlockDeviceMappings"]
    for mapping in data["BlockDeviceMappings"]:
        assert mapping["Ebs"]["Encrypted"] is True and mapping["Ebs"]["DeleteOnTermination"] is True
    assert data["IamInstanceProfile"] == {"Arn": {"Fn::GetAtt": ["BuilderInstanceProfile", "Arn"]}}


def test_windows_docker_data_root_on_second_volume(template):
    data = res(template, "WindowsLaunchTemplate")["LaunchTemplateData"]
    devices = [m["DeviceName"] for m in data["BlockDeviceMappings"]]
    assert devices == ["/dev/sda1", "xvdf"]
    script = Evaluator(template, {}).resolve(data["UserData"]["Fn::Base64"])
    assert script.startswith("<powershell>") and script.rstrip().endswith("</powershell>")
    assert "$config['data-root'] = $root" in script and ':\\DockerCache' in script
    assert "'storage-opts' = @('size=50GB')" in script
    assert "-Encoding ASCII" in script  # no BOM: dockerd rejects a daemon.json with one
    # The docker volume itself (EBS, DockerVolumeSize GiB), not the first empty disk by number.
    assert "$size = 200GB" in script and "$_.Size -eq $size" in script and "Sort-Object Number" not in script
    base64.b64encode(script.encode())  # plain text, fits in user data
    assert len(script.encode()) < 16 * 1024


def test_event_driven_functions_send_failed_invocations_to_the_queue(template):
    queue = {"Fn::GetAtt": ["FailedInvocationsQueue", "Arn"]}
    for fn, role in (("PollerFunction", "PollerRole"), ("CompletionFunction", "CompletionRole")):
        config = res(template, fn)["EventInvokeConfig"]
        assert config["DestinationConfig"]["OnFailure"] == {"Type": "SQS", "Destination": queue}, fn
        grants = [st for p in res(template, role)["Policies"] for st in p["PolicyDocument"]["Statement"]
                  if st["Action"] == "sqs:SendMessage"]
        assert [st["Resource"] for st in grants] == [queue], role


def test_every_alarm_notifies_the_optional_topic(template):
    alarms = {k: r["Properties"] for k, r in template["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert {"FailedInvocationsAlarm", "CompletionErrorsAlarm", "KeeperTerminationsAlarm", "KeeperFailuresAlarm",
            "FailedOrAbortedBuildsAlarm"} <= set(alarms)
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] == {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}, name
        assert alarm["TreatMissingData"] == "notBreaching", name


def test_preparation_substitutions_cover_exactly_its_placeholders(template):
    placeholders = set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", PREPARE_ASL_FILE.read_text()))
    given = set(res(template, "PoolPreparationStateMachine")["DefinitionSubstitutions"])
    assert placeholders == given
