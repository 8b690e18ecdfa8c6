"""Shared helpers of the template tests: a CloudFormation-aware YAML loader, policy statement
extraction, and the "what `aws cloudformation package` would produce" preparation of the SAM
template (local CodeUri / DefinitionUri / AWS::Include replaced by what CloudFormation sees)."""

from __future__ import annotations

import copy
import re
import json
from pathlib import Path
from typing import Any, Iterator

import yaml

ROOT = Path(__file__).resolve().parents[2]
CFN_DIR = ROOT / "cloudformation"
TEMPLATE = CFN_DIR / "template.yml"
ASL_FILE = ROOT / "statemachine" / "build.asl.json"
PREPARE_ASL_FILE = ROOT / "statemachine" / "prepare.asl.json"
DOCUMENT_FILE = ROOT / "ssm-documents" / "build.yml"


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns the short intrinsic tags (!Ref, !Sub, ...) into their long form."""


def _intrinsic(tag: str):
    name = "Ref" if tag == "Ref" else f"Fn::{tag}"

    def constructor(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if tag == "GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}

    return constructor


for _tag in ("Ref", "Sub", "GetAtt", "If", "Join", "Split", "Select", "Equals", "Not", "And", "Or",
             "FindInMap", "Base64", "Cidr", "ImportValue", "GetAZs", "Condition", "Transform"):
    _CfnLoader.add_constructor(f"!{_tag}", _intrinsic(_tag))


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


def if_branches(value: Any) -> list[Any]:
    """Both branches of an Fn::If (NoValue dropped), or the value itself."""
    if isinstance(value, dict) and "Fn::If" in value:
        out = []
        for branch in value["Fn::If"][1:]:
            if branch == {"Ref": "AWS::NoValue"}:
                continue
            out.extend(if_branches(branch))
        return out
    return [value]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def policy_statements(template: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(role logical id, policy name, statement) for every inline policy of every role/policy."""
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::IAM::Role":
            for policy in props.get("Policies", []):
                for p in if_branches(policy):
                    for st in as_list(p["PolicyDocument"]["Statement"]):
                        yield logical_id, p["PolicyName"], st
        elif resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            # attributed to the roles it is attached to (whatever its Condition)
            for role in props.get("Roles", []):
                for st in as_list(props["PolicyDocument"]["Statement"]):
                    yield role["Ref"], props.get("PolicyName", logical_id), st


def role_statements(template: dict[str, Any], role: str) -> list[dict[str, Any]]:
    return [st for r, _, st in policy_statements(template) if r == role]


def granted_actions(template: dict[str, Any], role: str) -> set[str]:
    return {a for st in role_statements(template, role) if st["Effect"] == "Allow" for a in as_list(st["Action"])}


def asl_sdk_actions(definition: dict[str, Any]) -> set[str]:
    """IAM actions of the `arn:aws:states:::aws-sdk:SERVICE:apiName[.waitForTaskToken]` tasks and
    of the optimized DynamoDB tasks (`arn:aws:states:::dynamodb:updateItem`)."""
    found: set[str] = set()

    def walk(states: dict[str, Any]) -> None:
        for state in states.values():
            resource = state.get("Resource", "")
            if isinstance(resource, str) and ":::aws-sdk:" in resource:
                service, api = resource.split(":::aws-sdk:", 1)[1].split(":", 1)
                api = api.split(".", 1)[0]
                found.add(f"{service}:{api[0].upper()}{api[1:]}")
            elif isinstance(resource, str) and resource.startswith("arn:aws:states:::dynamodb:"):
                api = resource.rsplit(":", 1)[1]
                found.add(f"dynamodb:{api[0].upper()}{api[1:]}")
            for branch in state.get("Branches", []):
                walk(branch["States"])
            for key in ("Iterator", "ItemProcessor"):
                if key in state:
                    walk(state[key]["States"])

    walk(definition["States"])
    return found


# ---------------------------------------------------------------- packaging stand-in

PLACEHOLDER_DOCUMENT = {
    "schemaVersion": "2.2",
    "description": "placeholder used by the tests until ssm-documents/build.yml exists",
    "mainSteps": [{"action": "aws:runShellScript", "name": "build", "inputs": {"runCommand": ["true"]}}],
}
PLACEHOLDER_DEFINITION = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}


def document_content() -> dict[str, Any]:
    if DOCUMENT_FILE.exists():
        return yaml.safe_load(DOCUMENT_FILE.read_text())
    return PLACEHOLDER_DOCUMENT


def state_machine_definition(path: Path = ASL_FILE) -> dict[str, Any]:
    if path.exists():
        return json.loads(path.read_text())
    return PLACEHOLDER_DEFINITION


def packaged(template: dict[str, Any], code_bucket: str) -> dict[str, Any]:
    """What CloudFormation receives after `aws cloudformation package` and AWS::Include: code in
    S3, the ASL inline (DefinitionUri -> Definition keeps the DefinitionSubstitutions path), the
    SSM document content inlined."""
    t = copy.deepcopy(template)
    for logical_id, resource in t["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            props["CodeUri"] = f"s3://{code_bucket}/{logical_id}.zip"
        elif resource["Type"] == "AWS::Serverless::StateMachine":
            uri = props.pop("DefinitionUri")
            props["Definition"] = state_machine_definition((TEMPLATE.parent / uri).resolve())
        elif resource["Type"] == "AWS::SSM::Document":
            include = props["Content"]["Fn::Transform"]
            assert include["Name"] == "AWS::Include"
            assert (TEMPLATE.parent / include["Parameters"]["Location"]).resolve() == DOCUMENT_FILE
            props["Content"] = document_content()
    return t


# ---------------------------------------------------------------- a small intrinsic evaluator

class Evaluator:
    """Resolves intrinsics of one template for given parameter values, so tests can assert the
    concrete ARNs a policy grants. Ref/GetAtt of resources resolve to readable stand-ins
    (`<BuildDocument>`, `<BuilderRole.Arn>`)."""

    def __init__(self, template: dict[str, Any], params: dict[str, Any], partition: str = "aws",
                 region: str = "eu-west-1", account: str = "123456789012", stack: str = "ec2-build"):
        self.t = template
        self.values: dict[str, Any] = {
            "AWS::Partition": partition, "AWS::Region": region, "AWS::AccountId": account,
            "AWS::StackName": stack, "AWS::URLSuffix": "amazonaws.com",
        }
        for name, spec in template.get("Parameters", {}).items():
            value = params.get(name, spec.get("Default"))
            if spec["Type"].startswith("List<") or spec["Type"] == "CommaDelimitedList":
                if isinstance(value, str):
                    value = value.split(",")
            self.values[name] = value

    def condition(self, name: str) -> bool:
        if name == "_always":
            return True
        return bool(self.resolve(self.t["Conditions"][name]))

    def resolve(self, v: Any) -> Any:
        if isinstance(v, list):
            return [x for x in (self.resolve(i) for i in v) if x is not _NO_VALUE]
        if not isinstance(v, dict):
            return v
        if len(v) != 1:
            return {k: r for k, r in ((k, self.resolve(x)) for k, x in v.items()) if r is not _NO_VALUE}
        (key, arg), = v.items()
        if key == "Ref":
            if arg == "AWS::NoValue":
                return _NO_VALUE
            return self.values[arg] if arg in self.values else f"<{arg}>"
        if key == "Fn::GetAtt":
            return f"<{arg[0]}.{arg[1]}>"
        if key == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
            variables = {k: self.resolve(x) for k, x in variables.items()}

            def sub(match: "re.Match[str]") -> str:
                name = match.group(1)
                if name in variables:
                    return str(variables[name])
                if name in self.values:
                    return str(self.values[name])
                if "." in name:
                    return f"<{name}>"
                return f"<{name}>"
            return re.sub(r"\$\{([^}!]+)\}", sub, text)
        if key == "Fn::Join":
            return arg[0].join(str(x) for x in self.resolve(arg[1]))
        if key == "Fn::Split":
            return self.resolve(arg[1]).split(arg[0])
        if key == "Fn::Select":
            return self.resolve(arg[1])[int(self.resolve(arg[0]))]
        if key == "Fn::If":
            return self.resolve(arg[1] if self.condition(arg[0]) else arg[2])
        if key == "Fn::Equals":
            return self.resolve(arg[0]) == self.resolve(arg[1])
        if key == "Fn::Not":
            return not self.resolve(arg[0])
        if key == "Fn::And":
            return all(self.resolve(x) for x in arg)
        if key == "Fn::Or":
            return any(self.resolve(x) for x in arg)
        if key == "Condition":
            return self.condition(arg)
        return {key: self.resolve(arg)}

    def role_statements(self, role: str) -> list[dict[str, Any]]:
        """The role's statements with conditions applied (a policy behind a false Fn::If is gone)."""
        props = self.t["Resources"][role]["Properties"]
        out = []
        for policy in self.resolve(props.get("Policies", [])):
            out.extend(as_list(policy["PolicyDocument"]["Statement"]))
        for resource in self.t["Resources"].values():
            if resource["Type"] != "AWS::IAM::Policy":
                continue
            if "Condition" in resource and not self.condition(resource["Condition"]):
                continue
            if {"Ref": role} in resource["Properties"]["Roles"]:
                out.extend(as_list(self.resolve(resource["Properties"]["PolicyDocument"])["Statement"]))
        return out


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


_NO_VALUE = _NoValue()
