"""Deploy ec2-build into a LocalStack the way cloudformation/template.yml wires it.

Shared by the flow tests (document + state machine only), the end-to-end tests and the demo.
Nothing here restates the product's wiring: the custom action type, the Lambda environment and
log settings, the EventBridge patterns, the schedule, the launch templates, the roles and the
state machine's DefinitionSubstitutions are read from the template and resolved for the local
stack (tests/template/template_helpers.Evaluator, with real values for the resources created
here). The SSM document is ssm-documents/build.yml and the definition statemachine/build.asl.json,
unchanged apart from the substitutions. moto's CloudFormation cannot do this (it skips
AWS::CodePipeline::CustomActionType and SAM resources, and never runs state machines it creates).

What differs from a real deployment, on purpose:
- the state machine's agent polling may be shortened through `substitutions` (its placeholders,
  not an edit of the ASL), and a Lambda variable overridden through `lambda_env`;
- the Lambdas are the debug binaries of this machine (target/debug/poller, completion) under
  the Runtime API emulator, not arm64 zips; events reach them through the stack's router.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
import uuid
from dataclasses import dataclass, field
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ASL = os.path.join(REPO, "statemachine", "build.asl.json")
PREPARE_ASL = os.path.join(REPO, "statemachine", "prepare.asl.json")
DOCUMENT = os.path.join(REPO, "ssm-documents", "build.yml")
ACCOUNT = "123456789012"

sys.path.insert(0, os.path.join(REPO, "tests", "template"))
from template_helpers import Evaluator, load_template  # noqa: E402


# ---------------------------------------------------------------- pieces the flow tests use too
def create_build_document(ssm: Any, name: str) -> str:
    """The real SSM document (ssm-documents/build.yml) as a Command document named `name`."""
    with open(DOCUMENT) as f:
        ssm.create_document(Content=f.read(), Name=name, DocumentType="Command", DocumentFormat="YAML")
    return name


def render_definition(substitutions: dict[str, str], path: str = ASL) -> str:
    """statemachine/build.asl.json (or `path`) with its ${Placeholders} replaced, as
    DefinitionSubstitutions do."""
    with open(path) as f:
        text = f.read()
    for key, value in substitutions.items():
        text = text.replace("${" + key + "}", str(value))
    left = sorted(set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", text)))
    assert not left, f"unsubstituted placeholders: {left}"
    return text


def create_state_machine(sfn: Any, substitutions: dict[str, str], name: str | None = None, role_arn: str | None = None,
                         definition: str | None = None) -> str:
    """The build state machine; `definition` (already substituted) replaces the rendered file in tests of failures."""
    return sfn.create_state_machine(
        name=name or "build-" + uuid.uuid4().hex[:8],
        definition=definition or render_definition(substitutions),
        roleArn=role_arn or f"arn:aws:iam::{ACCOUNT}:role/sfn",
        type="STANDARD",
    )["stateMachineArn"]


# ---------------------------------------------------------------- the whole product
class _Resolver(Evaluator):
    """Evaluator whose Ref/GetAtt of resources give the values of what was created here."""

    def resolve(self, v: Any) -> Any:
        if isinstance(v, dict) and len(v) == 1:
            (key, arg), = v.items()
            if key == "Fn::GetAtt":
                name = f"{arg[0]}.{arg[1]}"
                if name not in self.values:
                    raise KeyError(f"{name} is not deployed yet")
                return self.values[name]
            if key == "Ref" and arg not in self.values and arg in self.t["Resources"]:
                raise KeyError(f"{arg} is not deployed yet")
            if key == "Fn::Base64":
                return base64.b64encode(str(self.resolve(arg)).encode()).decode()
        return super().resolve(v)


def _camel(value: Any) -> Any:
    """CloudFormation's PascalCase property names to the CodePipeline API's camelCase."""
    if isinstance(value, list):
        return [_camel(v) for v in value]
    if isinstance(value, dict):
        return {k[:1].lower() + k[1:]: _camel(v) for k, v in value.items()}
    return value


def _rate_seconds(expression: str) -> float:
    m = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", expression)
    if not m:
        raise ValueError(f"unsupported schedule {expression!r}")
    unit = {"minute": 60, "hour": 3600, "day": 86400}[m.group(2).rstrip("s")]
    return int(m.group(1)) * unit


@dataclass
class Deployment:
    stack: Any
    name: str
    values: dict[str, Any]
    action_type: dict[str, str]
    state_machine_arn: str
    document_name: str
    artifact_bucket: str
    subnets: list[str]
    linux_ami: str
    windows_ami: str
    functions: dict[str, Any] = field(default_factory=dict)  # logical id -> LambdaFunction
    rules: dict[str, str] = field(default_factory=dict)  # "PollerFunction.Sweep" -> router rule name
    outputs: dict[str, str] = field(default_factory=dict)  # the template's Outputs, resolved

    @property
    def poller(self) -> Any:
        return self.functions["PollerFunction"]

    @property
    def completion(self) -> Any:
        return self.functions["CompletionFunction"]

    @property
    def keeper(self) -> Any:
        return self.functions["KeeperFunction"]

    def fire_keeper(self) -> dict[str, Any]:
        return self.stack.router.fire(self.rules["KeeperFunction.Keep"])

    def keep(self, timeout: float = 60) -> dict[str, Any]:
        """Run the keeper once now (its scheduled event) and return its response; a failed run
        raises with the function's error."""
        event = self.fire_keeper()
        mine = lambda invs: [i for i in invs if i.event.get("id") == event["id"] and i.done.is_set()]  # noqa: E731
        (inv, *_) = mine(self.keeper.wait_for(lambda invs: bool(mine(invs)), timeout))
        if inv.status != "Succeeded":
            raise AssertionError(f"keeper run {inv.status}: {inv.error}")
        return inv.result

    def lambda_logs(self) -> str:
        return "".join(fn.logs() for fn in self.functions.values())

    def fire_sweep(self) -> dict[str, Any]:
        return self.stack.router.fire(self.rules["PollerFunction.Sweep"])

    def instances(self, **tags: str) -> list[dict[str, Any]]:
        """Emulated instances of this deployment (tag ec2-build:stack), optionally filtered by more tags."""
        filters = [{"Name": "tag:ec2-build:stack", "Values": [self.name]}]
        filters += [{"Name": f"tag:{k}", "Values": [v]} for k, v in tags.items()]
        found = self.stack.client("ec2").describe_instances(Filters=filters)
        return [i for r in found["Reservations"] for i in r["Instances"]]

    def held_jobs(self) -> dict[str, dict[str, str]]:
        """The held-jobs table: execution ARN -> {job_id, token, held_at_ms}."""
        items = self.stack.client("dynamodb").scan(TableName=self.values["HeldJobsTable"])["Items"]
        return {i["execution_arn"]["S"]: {k: next(iter(x.values())) for k, x in i.items()} for i in items}

    def pool_registry(self, pool: str | None = None) -> list[dict[str, Any]]:
        """The pool registry's items (plain values), optionally of one pool, by pool and instance."""
        items = self.stack.client("dynamodb").scan(TableName=self.values["PoolRegistryTable"], ConsistentRead=True)["Items"]
        plain = [{k: next(iter(x.values())) for k, x in i.items()} for i in items]
        return sorted((i for i in plain if pool in (None, i["Pool"])), key=lambda i: (i["Pool"], i["InstanceId"]))

    def preparations(self, status: str | None = None) -> list[dict[str, Any]]:
        """Executions of the pool preparation workflow, optionally with one status."""
        sfn = self.stack.client("stepfunctions")
        kwargs = {"statusFilter": status} if status else {}
        return sfn.list_executions(stateMachineArn=self.values["PoolPreparationStateMachine"], **kwargs)["executions"]

    def execution_arn(self, job_id: str) -> str:
        return self.state_machine_arn.replace(":stateMachine:", ":execution:", 1) + ":" + job_id


def deploy(
    stack: Any,
    *,
    name: str = "ec2-build",
    bin_dir: str | None = None,
    substitutions: dict[str, str] | None = None,
    lambda_env: dict[str, dict[str, str]] | None = None,
    schedule: bool = True,
    concurrency: int = 1,
    parameters: dict[str, Any] | None = None,
    prepare_substitutions: dict[str, str] | None = None,
) -> Deployment:
    """Create every resource of the template that the local stack can hold, start the two Lambdas
    (real binaries) and route their events. `schedule=False` creates the sweep schedule without its
    timer (fire it with Deployment.fire_sweep()), so tests decide when the sweep runs. `parameters`
    overrides template parameters (e.g. ActionProvider, for a second deployment beside another).

    What an operator's tools read is recorded as on AWS: a CloudFormation stack named `name`
    holding the template's Outputs, the EventBridge rules (with the functions as targets) in the
    events service, and VPC endpoints for SSM in the VPC. The router, not those rules, delivers
    the events."""
    bin_dir = bin_dir or os.environ.get("LAMBDA_BIN_DIR") or os.path.join(REPO, "target", "debug")
    template = load_template()
    res = template["Resources"]
    ec2, iam, logs, ssm, sfn, cp, s3, events = (stack.client(s) for s in ("ec2", "iam", "logs", "ssm", "stepfunctions", "codepipeline", "s3", "events"))
    suffix = uuid.uuid4().hex[:6]

    # Parameters: a VPC with two subnets, one artifact bucket for the pipelines.
    from tests.localstack.helpers import amis

    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.42.{i}.0/24")["Subnet"]["SubnetId"] for i in (1, 2)]
    bucket = f"{name}-artifacts-{suffix}".lower()
    s3.create_bucket(Bucket=bucket)
    # Private subnets reaching SSM through interface endpoints, as `ec2-build doctor` expects.
    for service in ("ssm", "ssmmessages", "ec2messages"):
        ec2.create_vpc_endpoint(VpcId=vpc, ServiceName=f"com.amazonaws.{stack.region}.{service}",
                                VpcEndpointType="Interface", SubnetIds=subnets)
    ev = _Resolver(template, {"VpcId": vpc, "SubnetIds": subnets, "ArtifactBucketNames": [bucket], **(parameters or {})},
                   region=stack.region, account=ACCOUNT, stack=name)
    v = ev.values
    props = lambda logical_id: res[logical_id].get("Properties", {})  # noqa: E731

    # Log groups.
    for lid in [k for k, r in res.items() if r["Type"] == "AWS::Logs::LogGroup"]:
        group = ev.resolve(props(lid)["LogGroupName"])
        logs.create_log_group(logGroupName=group)
        v[lid] = group
        v[f"{lid}.Arn"] = f"arn:aws:logs:{stack.region}:{ACCOUNT}:log-group:{group}:*"

    # DynamoDB tables, with the template's key schema and TTL attribute.
    dynamodb = stack.client("dynamodb")
    for lid in [k for k, r in res.items() if r["Type"] == "AWS::DynamoDB::Table"]:
        p = props(lid)
        table = f"{name}-{lid}-{suffix}"
        indexes = {"GlobalSecondaryIndexes": p["GlobalSecondaryIndexes"]} if p.get("GlobalSecondaryIndexes") else {}
        dynamodb.create_table(TableName=table, BillingMode=p["BillingMode"],
                              AttributeDefinitions=p["AttributeDefinitions"], KeySchema=p["KeySchema"], **indexes)
        ttl = p.get("TimeToLiveSpecification")
        if ttl:
            dynamodb.update_time_to_live(TableName=table, TimeToLiveSpecification=ttl)
        v[lid] = table
        v[f"{lid}.Arn"] = f"arn:aws:dynamodb:{stack.region}:{ACCOUNT}:table/{table}"

    # The build document (the template includes the same file through AWS::Include).
    v["BuildDocument"] = create_build_document(ssm, f"{name}-BuildDocument-{suffix}")

    # Roles, their inline policies, the instance profile (IAM is not enforced locally, but the
    # launch templates and the state machine refer to them as on AWS).
    for lid in [k for k, r in res.items() if r["Type"] == "AWS::IAM::Role"]:
        role_name = f"{name}-{lid}-{suffix}"[:64]
        p = props(lid)
        arn = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(p["AssumeRolePolicyDocument"]),
                              Description=p.get("Description", ""))["Role"]["Arn"]
        v[lid], v[f"{lid}.Arn"] = role_name, arn
    profile_name = f"{name}-BuilderInstanceProfile-{suffix}"
    profile = iam.create_instance_profile(InstanceProfileName=profile_name)["InstanceProfile"]
    for role in ev.resolve(props("BuilderInstanceProfile")["Roles"]):
        iam.add_role_to_instance_profile(InstanceProfileName=profile_name, RoleName=role)
    v["BuilderInstanceProfile"], v["BuilderInstanceProfile.Arn"] = profile_name, profile["Arn"]

    # Security group (no ingress rules: the template declares egress only).
    sg_props = ev.resolve(props("BuilderSecurityGroup"))
    sg = ec2.create_security_group(GroupName=f"{name}-builders-{suffix}", Description=sg_props["GroupDescription"], VpcId=sg_props["VpcId"])["GroupId"]
    v["BuilderSecurityGroup"] = v["BuilderSecurityGroup.GroupId"] = sg

    # Launch templates, with the template's LaunchTemplateData.
    for lid in ("LinuxLaunchTemplate", "WindowsLaunchTemplate"):
        p = ev.resolve(props(lid))
        v[lid] = ec2.create_launch_template(
            LaunchTemplateName=f"{name}-{lid}-{suffix}", LaunchTemplateData=p["LaunchTemplateData"],
            TagSpecifications=p.get("TagSpecifications", []),
        )["LaunchTemplate"]["LaunchTemplateId"]

    def definition_substitutions(logical_id: str, overrides: dict[str, str] | None) -> dict[str, str]:
        """The template's DefinitionSubstitutions of a state machine, plus test overrides of them."""
        subs = {k: str(x) for k, x in ev.resolve(props(logical_id)["DefinitionSubstitutions"]).items()}
        unknown = set(overrides or {}) - set(subs)
        assert not unknown, f"not DefinitionSubstitutions of {logical_id}: {unknown}"
        return {**subs, **(overrides or {})}

    # The state machine, with the template's DefinitionSubstitutions (plus test overrides).
    subs = definition_substitutions("BuildStateMachine", substitutions)
    sm_name = f"BuildStateMachine-{suffix}"
    arn = create_state_machine(sfn, subs, name=sm_name, role_arn=v["StateMachineRole.Arn"])
    v["BuildStateMachine"], v["BuildStateMachine.Name"] = arn, sm_name
    # The pool preparation workflow, likewise (`prepare_substitutions` shortens its waits).
    prep_subs = definition_substitutions("PoolPreparationStateMachine", prepare_substitutions)
    prep_name = f"PoolPreparationStateMachine-{suffix}"
    v["PoolPreparationStateMachine"] = sfn.create_state_machine(
        name=prep_name, definition=render_definition(prep_subs, PREPARE_ASL),
        roleArn=v["StateMachineRole.Arn"], type="STANDARD")["stateMachineArn"]
    v["PoolPreparationStateMachine.Name"] = prep_name

    # The custom action type.
    at = _camel(ev.resolve(props("BuildActionType")))
    cp.create_custom_action_type(
        category=at["category"], provider=at["provider"], version=at["version"], settings=at.get("settings", {}),
        configurationProperties=at["configurationProperties"], inputArtifactDetails=at["inputArtifactDetails"],
        outputArtifactDetails=at["outputArtifactDetails"], tags=at.get("tags", []),
    )
    action_type = {"category": at["category"], "owner": "Custom", "provider": at["provider"], "version": at["version"]}

    linux, windows = amis(stack)
    dep = Deployment(stack, name, v, action_type, arn, v["BuildDocument"], bucket, subnets, linux, windows)

    # The Lambdas: environment and log settings from Globals + the function; events as routed rules.
    glob = template["Globals"]["Function"]
    for lid, binary in (("PollerFunction", "poller"), ("CompletionFunction", "completion"), ("KeeperFunction", "keeper")):
        p = props(lid)
        env = {k: str(x) for k, x in ev.resolve(glob.get("Environment", {}).get("Variables", {})).items()}
        env.update({k: str(x) for k, x in ev.resolve(p.get("Environment", {}).get("Variables", {})).items()})
        log_config = p.get("LoggingConfig", {})
        if log_config.get("LogFormat"):
            env["AWS_LAMBDA_LOG_FORMAT"] = log_config["LogFormat"]
        if log_config.get("ApplicationLogLevel"):
            env["AWS_LAMBDA_LOG_LEVEL"] = log_config["ApplicationLogLevel"]
        env.update((lambda_env or {}).get(lid, {}))
        v[lid] = f"{name}-{lid}"
        v[f"{lid}.Arn"] = f"arn:aws:lambda:{stack.region}:{ACCOUNT}:function:{name}-{lid}"
        fn = stack.lambda_function(
            f"{name}-{lid}", binary=os.path.join(bin_dir, binary), env=env,
            memory=int(p.get("MemorySize", glob.get("MemorySize", 128))), timeout=float(p.get("Timeout", glob.get("Timeout", 3))),
            concurrency=concurrency, retries=2,  # asynchronous invocation: Lambda retries twice
        )
        dep.functions[lid] = fn
        for event_name, event in p.get("Events", {}).items():
            rule = f"{name}-{lid}-{event_name}"
            if event["Type"] == "EventBridgeRule":
                pattern = ev.resolve(event["Properties"]["Pattern"])
                stack.router.add_rule(rule, pattern, fn)
                events.put_rule(Name=rule, EventPattern=json.dumps(pattern), State="ENABLED")
            elif event["Type"] == "Schedule":
                expression = ev.resolve(event["Properties"]["Schedule"])
                stack.router.add_schedule(rule, _rate_seconds(expression), fn, start=schedule)
                events.put_rule(Name=rule, ScheduleExpression=expression, State="ENABLED")
            else:
                raise ValueError(f"{lid}.{event_name}: event type {event['Type']} not routed locally")
            events.put_targets(Rule=rule, Targets=[{"Id": lid, "Arn": v[f"{lid}.Arn"]}])
            dep.rules[f"{lid}.{event_name}"] = rule

    # The stack's outputs, as DescribeStacks shows them on AWS (moto's CloudFormation holds them;
    # the one resource is a no-op that CloudFormation requires).
    v["Dashboard"] = f"{name}-builds"
    outputs = {}
    for key, output in template["Outputs"].items():
        try:
            outputs[key] = str(ev.resolve(output["Value"]))
        except KeyError:  # a resource the local stack does not hold (the failed-invocations queue)
            continue
    stack.client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps({
        "Resources": {"Deployed": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {k: {"Value": x} for k, x in outputs.items()},
    }))
    dep.outputs = outputs
    return dep
