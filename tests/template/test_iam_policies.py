"""The least-privilege IAM rules, checked on cloudformation/template.yml:
no `*` actions; `*` resources only for actions AWS offers on `*` alone; the sensitive EC2/SSM
actions limited to instances carrying the stack's tag; iam:PassRole only for the builder role to
EC2; the builder role limited to the artifact buckets, KMS keys and ECR repositories given as
parameters. Concrete ARNs are checked by evaluating the intrinsics for sample parameters."""

from __future__ import annotations

import pytest

from template_helpers import (
    PREPARE_ASL_FILE,
    ASL_FILE,
    Evaluator,
    as_list,
    asl_sdk_actions,
    granted_actions,
    load_template,
    policy_statements,
    role_statements,
    state_machine_definition,
)

STACK_TAG = "aws:ResourceTag/ec2-build:stack"
STACK = {"Ref": "AWS::StackName"}

# Actions for which AWS supports no resource-level permissions, so Resource must be "*".
# Each is listed with the reason the grant is still narrow.
WILDCARD_RESOURCE_ONLY = {
    # job ids are learnt only by PollForJobs, which is scoped to our action type
    "codepipeline:AcknowledgeJob", "codepipeline:GetJobDetails",
    "codepipeline:PutJobSuccessResult", "codepipeline:PutJobFailureResult",
    # read-only
    "ec2:DescribeTags", "ec2:DescribeImages", "ec2:DescribeInstanceStatus", "ec2:DescribeInstances",
    "ssm:DescribeInstanceInformation", "ssm:GetCommandInvocation", "ssm:ListCommandInvocations",
    "ssm:ListCommands",
    # command ids come from our own SendCommand, which is scoped to our document and instances
    "ssm:CancelCommand",
    # the SSM agent's messaging channel (instance side)
    "ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel",
    "ec2messages:AcknowledgeMessage", "ec2messages:DeleteMessage", "ec2messages:FailMessage",
    "ec2messages:GetEndpoint", "ec2messages:GetMessages", "ec2messages:SendReply",
    # task-token callbacks: only the holder of the token can use them
    "states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat",
    # the token only works for repositories allowed elsewhere
    "ecr:GetAuthorizationToken",
    # Step Functions logging to CloudWatch Logs (vended log delivery)
    "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery", "logs:ListLogDeliveries", "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
}

SAMPLE = {
    "VpcId": "vpc-0123456789abcdef0",
    "SubnetIds": "subnet-0123456789abcdef0,subnet-0123456789abcdef1",
    "ArtifactBucketNames": "pipe-a-artifacts,pipe-b-artifacts",
}


@pytest.fixture(scope="module")
def template():
    return load_template()


@pytest.fixture(scope="module")
def statements(template):
    return list(policy_statements(template))


def test_every_role_has_statements(template):
    roles = [k for k, r in template["Resources"].items() if r["Type"] == "AWS::IAM::Role"]
    assert sorted(roles) == ["BuilderRole", "CompletionRole", "KeeperRole", "PollerRole", "StateMachineRole"]
    for role in roles:
        assert role_statements(template, role), role
        assert "ManagedPolicyArns" not in template["Resources"][role]["Properties"], (
            f"{role}: managed policies are not reviewed here; write the statements out")


def test_functions_use_our_roles_not_sam_generated_ones(template):
    for name, r in template["Resources"].items():
        if r["Type"] == "AWS::Serverless::Function":
            assert "Role" in r["Properties"] and "Policies" not in r["Properties"], name
        if r["Type"] == "AWS::Serverless::StateMachine":
            assert "Role" in r["Properties"] and "Policies" not in r["Properties"], name


def test_no_wildcard_actions_and_no_deny_tricks(statements):
    for role, policy, st in statements:
        assert st["Effect"] == "Allow", (role, st.get("Sid"))
        assert "NotAction" not in st and "NotResource" not in st, (role, st.get("Sid"))
        for action in as_list(st["Action"]):
            assert "*" not in action, f"{role}/{policy}/{st.get('Sid')}: wildcard action {action}"
            assert action == action.strip() and ":" in action


def test_wildcard_resources_only_where_aws_requires_them(statements):
    for role, policy, st in statements:
        if "*" in as_list(st["Resource"]):
            extra = set(as_list(st["Action"])) - WILDCARD_RESOURCE_ONLY
            assert not extra, f"{role}/{st.get('Sid')}: {sorted(extra)} on Resource '*'"
            assert "Condition" in st or st.get("Sid"), "a '*' statement needs a Sid saying why"


def test_every_statement_has_a_sid(statements):
    for role, policy, st in statements:
        assert st.get("Sid"), (role, policy, st)


def _statements_with(statements, action):
    return [(role, st) for role, _, st in statements if action in as_list(st["Action"])]


@pytest.mark.parametrize("action", ["ec2:TerminateInstances", "ec2:StopInstances", "ec2:StartInstances",
                                    "ec2:RebootInstances", "ec2:ModifyInstanceAttribute"])
def test_instance_changes_only_on_instances_tagged_with_this_stack(statements, action):
    for role, st in _statements_with(statements, action):
        assert st["Condition"] == {"StringEquals": {STACK_TAG: STACK}}, (role, st["Sid"])
        for resource in as_list(st["Resource"]):
            assert resource["Fn::Sub"].endswith(":instance/*"), (role, st["Sid"])


def test_release_permissions_are_granted_where_instances_are_released(template):
    assert "ec2:TerminateInstances" in granted_actions(template, "StateMachineRole")
    assert "ec2:TerminateInstances" in granted_actions(template, "CompletionRole")
    # the completion function finds the instances of an execution by their tag
    assert "ec2:DescribeTags" in granted_actions(template, "CompletionRole")
    assert {"ec2:TerminateInstances", "ec2:DescribeInstances"} <= granted_actions(template, "KeeperRole")
    assert "ec2:TerminateInstances" not in granted_actions(template, "PollerRole")
    assert "ec2:TerminateInstances" not in granted_actions(template, "BuilderRole")


def test_send_command_only_our_document_on_our_instances(statements):
    found = _statements_with(statements, "ssm:SendCommand")
    assert {role for role, _ in found} == {"StateMachineRole"}
    kinds = set()
    for _, st in found:
        assert as_list(st["Action"]) == ["ssm:SendCommand"], st["Sid"]
        (resource,) = as_list(st["Resource"])
        arn = resource["Fn::Sub"]
        if arn.endswith(":document/${BuildDocument}"):
            assert "Condition" not in st
            kinds.add("document")
        elif arn.endswith(":document/ec2-build-*"):
            # the pools' warm-up documents, named ec2-build-* (docs/contracts.md)
            assert "Condition" not in st
            kinds.add("warm-up documents")
        else:
            assert arn.endswith(":instance/*"), st["Sid"]
            assert st["Condition"] == {"StringEquals": {"ssm:resourceTag/ec2-build:stack": STACK}}
            kinds.add("instance")
    assert kinds == {"document", "warm-up documents", "instance"}


def test_run_instances_only_creates_tagged_instances_in_our_vpc(statements):
    found = [st for role, st in _statements_with(statements, "ec2:RunInstances")]
    assert found and all(as_list(st["Action"]) == ["ec2:RunInstances"] for st in found)
    by_type: dict[str, dict] = {}
    for st in found:
        assert st["Resource"] != "*", st["Sid"]
        for resource in as_list(st["Resource"]):
            arn = resource["Fn::Sub"]
            kind = arn.split(":")[-1].split("/")[0]
            by_type[kind] = st
    assert by_type["instance"]["Condition"] == {
        "StringEquals": {"aws:RequestTag/ec2-build:stack": STACK}}
    assert "ec2:Vpc" in by_type["subnet"]["Condition"]["StringEquals"]
    sg = [r["Fn::Sub"] for r in as_list(by_type["security-group"]["Resource"])]
    assert all(arn.endswith("security-group/${BuilderSecurityGroup.GroupId}") for arn in sg if "security-group" in arn)
    templates = [r["Fn::Sub"] for r in as_list(by_type["launch-template"]["Resource"]) if "launch-template" in r["Fn::Sub"]]
    assert sorted(t.rsplit("/", 1)[1] for t in templates) == ["${LinuxLaunchTemplate}", "${WindowsLaunchTemplate}"]


def test_create_tags_only_while_launching(statements):
    found = _statements_with(statements, "ec2:CreateTags")
    assert found
    for _, st in found:
        values = as_list(st["Condition"]["StringEquals"]["ec2:CreateAction"])
        assert set(values) <= {"RunInstances", "CreateFleet"}, st["Sid"]


def test_pass_role_only_builder_role_to_ec2(statements):
    found = _statements_with(statements, "iam:PassRole")
    assert len(found) == 1
    role, st = found[0]
    assert role == "StateMachineRole"
    assert as_list(st["Action"]) == ["iam:PassRole"]
    assert st["Resource"] == {"Fn::GetAtt": ["BuilderRole", "Arn"]}
    assert st["Condition"] == {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}


def test_no_other_iam_or_sts_permissions(statements):
    for role, _, st in statements:
        for action in as_list(st["Action"]):
            if action.startswith(("iam:", "sts:", "organizations:")):
                assert action in ("iam:PassRole", "iam:CreateServiceLinkedRole"), (role, st["Sid"], action)


def test_service_linked_role_only_ec2_spot_for_the_state_machine(statements):
    # A first spot launch in an account creates AWSServiceRoleForEC2Spot with the caller's
    # permissions; nothing else may create service-linked roles.
    found = _statements_with(statements, "iam:CreateServiceLinkedRole")
    assert [role for role, _ in found] == ["StateMachineRole"]
    (_, st), = found
    assert as_list(st["Action"]) == ["iam:CreateServiceLinkedRole"]
    assert st["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/aws-service-role/"
                                         "spot.amazonaws.com/AWSServiceRoleForEC2Spot"}
    assert st["Condition"] == {"StringEquals": {"iam:AWSServiceName": "spot.amazonaws.com"}}


def test_lambdas_poll_only_our_action_type_and_drive_only_our_state_machine(template):
    ev = Evaluator(template, SAMPLE)
    logs = {"PollerRole": "<PollerLogGroup.Arn>", "CompletionRole": "<CompletionLogGroup.Arn>",
            "KeeperRole": "<KeeperLogGroup.Arn>"}
    for role in logs:
        for st in ev.role_statements(role):
            actions = as_list(st["Action"])
            if "codepipeline:PollForJobs" in actions:
                assert actions == ["codepipeline:PollForJobs"]
                assert st["Resource"] == "arn:aws:codepipeline:eu-west-1:123456789012:actiontype:Custom/Build/EC2Build/1"
            if any(a.startswith("states:") for a in actions):
                ours = ["<BuildStateMachine>", "arn:aws:states:eu-west-1:123456789012:execution:<BuildStateMachine.Name>:*"]
                if role == "KeeperRole":  # the keeper also starts and follows pool preparations
                    ours += ["<PoolPreparationStateMachine>",
                             "arn:aws:states:eu-west-1:123456789012:execution:<PoolPreparationStateMachine.Name>:*"]
                assert st["Resource"] in ours
            if any(a.startswith("logs:") for a in actions):
                assert st["Resource"] == logs[role]
            if any(a.startswith("codepipeline:") for a in actions) and role == "KeeperRole":
                assert actions == ["codepipeline:ListActionExecutions"], "the keeper only reads pipelines"


def _builder(template, **params):
    return Evaluator(template, {**SAMPLE, **params}).role_statements("BuilderRole")


def _actions_on(statements, prefix):
    return [(a, st) for st in statements for a in as_list(st["Action"]) if a.startswith(prefix)]


@pytest.mark.parametrize("partition", ["aws", "aws-cn", "aws-us-gov"])
def test_builder_reads_and_writes_only_the_given_artifact_buckets(template, partition):
    ev = Evaluator(template, SAMPLE, partition=partition)
    s3 = _actions_on(ev.role_statements("BuilderRole"), "s3:")
    assert {a for a, _ in s3} == {"s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"}
    for _, st in s3:
        assert st["Resource"] == [f"arn:{partition}:s3:::pipe-a-artifacts/*", f"arn:{partition}:s3:::pipe-b-artifacts/*"]


def test_builder_kms_only_for_the_given_keys_through_s3(template):
    assert _actions_on(_builder(template), "kms:") == []
    keys = "arn:aws:kms:eu-west-1:123456789012:key/1111-2222,arn:aws:kms:eu-west-1:123456789012:key/3333"
    kms = _actions_on(_builder(template, ArtifactKmsKeyArns=keys), "kms:")
    assert {a for a, _ in kms} == {"kms:Decrypt", "kms:GenerateDataKey"}
    for _, st in kms:
        assert st["Resource"] == keys.split(",")
        assert st["Condition"] == {"StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}}


def test_builder_ecr_only_for_the_given_repositories(template):
    assert _actions_on(_builder(template), "ecr:") == []
    repos = "arn:aws:ecr:eu-west-1:123456789012:repository/app,arn:aws:ecr:eu-west-1:123456789012:repository/tools"
    ecr = _actions_on(_builder(template, EcrRepositoryArns=repos), "ecr:")
    assert ("ecr:PutImage", ecr[-1][1]) in ecr
    for action, st in ecr:
        expected = "*" if action == "ecr:GetAuthorizationToken" else repos.split(",")
        assert st["Resource"] == expected, action


def test_builder_writes_only_its_build_log_and_reports_task_results(template):
    statements = _builder(template)
    for action, st in _actions_on(statements, "logs:"):
        if action == "logs:DescribeLogGroups":
            continue
        assert st["Resource"] == ["<BuildLogGroup.Arn>", "<BuildLogGroup.Arn>:log-stream:*"], action
    assert {a for a, _ in _actions_on(statements, "states:")} == {
        "states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat"}


def test_ebs_key_grant_only_when_a_key_is_given(template):
    none = Evaluator(template, SAMPLE).role_statements("StateMachineRole")
    assert _actions_on(none, "kms:") == []
    key = "arn:aws:kms:eu-west-1:123456789012:key/abcd"
    given = Evaluator(template, {**SAMPLE, "EbsKmsKeyArn": key}).role_statements("StateMachineRole")
    for _, st in _actions_on(given, "kms:"):
        assert st["Resource"] == key
        assert st["Condition"] == {"StringEquals": {"kms:ViaService": "ec2.eu-west-1.amazonaws.com"}}


# Granted to the state machine role for other reasons than an aws-sdk task of the ASL.
NOT_FROM_TASKS = {
    "iam:PassRole", "ec2:CreateTags",  # side permissions of RunInstances
    "iam:CreateServiceLinkedRole",  # EC2 creates the Spot service-linked role on a first spot launch
    "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
    "kms:CreateGrant", "kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptFrom", "kms:ReEncryptTo",
}


@pytest.mark.skipif(not ASL_FILE.exists(), reason="statemachine/build.asl.json not written yet")
def test_state_machine_role_matches_the_tasks_of_the_definition(template):
    # The role runs both workflows: the build and the pool preparation.
    used = asl_sdk_actions(state_machine_definition()) | asl_sdk_actions(state_machine_definition(PREPARE_ASL_FILE))
    granted = granted_actions(template, "StateMachineRole")
    assert not used - granted, f"tasks the role cannot run: {sorted(used - granted)}"
    assert not granted - used - NOT_FROM_TASKS, f"granted but never used: {sorted(granted - used - NOT_FROM_TASKS)}"
