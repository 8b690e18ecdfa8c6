"""SSM Run Command against emulated EC2 instances, executed by the local agent.

Adds DescribeInstanceInformation, ListCommandInvocations, CancelCommand; replaces
SendCommand (validation like AWS, delivery only to the instances named or matched by
Targets, real execution) and GetCommandInvocation.

Agent availability ("is the SSM agent of this instance online?") and version:
  * running instances are Online, with AgentVersion DEFAULT_AGENT_VERSION, unless
  * the instance tag `ec2build:local-agent` says `offline` (never registers),
    `delay=<seconds>` (registers that long after launch: the first boot), `start=<seconds>`
    (registers that long after a StartInstances of a stopped instance; default 0) or
    `version=<a.b.c.d>` (the AgentVersion DescribeInstanceInformation reports), several joined
    by commas (`delay=60,start=5,version=3.2.582.0`), or
  * the server-wide AGENT_CONFIG (test API PUT /_ec2build/agent) says so for its image id
    or by default, in the same words.
Instances whose agent is not online are not listed, and SendCommand to them fails with
InvalidInstanceId, as on AWS.
"""

from __future__ import annotations

import datetime
import re
import threading
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.core.responses import ActionResult, EmptyResult
from moto.ssm import models as ssm_models
from moto.ssm.responses import SimpleSystemManagerResponse

from . import agent

AGENT_TAG = "ec2build:local-agent"
# When StartInstances last started the instance from stopped (absent until then): the agent's
# `start=N` delay counts from it, the first boot's `delay=N` from the launch.
STARTED_ATTRIBUTE = "_ec2build_started_at"
DEFAULT_AGENT_VERSION = "3.3.2746.0"
AGENT_CONFIG: dict[str, Any] = {"default": "online", "images": {}}
_LOCK = threading.RLock()


class _Err(JsonRESTError):
    code = 400

    def __init__(self, error_type: str, message: str):
        super().__init__(error_type, message)


def _ec2(account_id: str, region: str) -> Any:
    from moto.ec2.models import ec2_backends

    return ec2_backends[account_id][region]


def _tags(instance: Any) -> dict[str, str]:
    return dict(instance.ec2_backend.tags.get(instance.id, {}))


def platform_of(instance: Any) -> str:
    platform = getattr(instance, "platform", None)
    if not platform:
        try:
            ami = instance.ec2_backend.describe_images(ami_ids=[instance.image_id])[0]
            platform = ami.platform
        except Exception:
            platform = None
    return "Windows" if (platform or "").lower() == "windows" else "Linux"


def agent_settings(instance: Any) -> dict[str, str]:
    """The instance's agent mode as {"offline": "", "delay": "5", "version": "3.2.582.0", ...}."""
    mode = _tags(instance).get(AGENT_TAG)
    if mode is None:
        mode = AGENT_CONFIG["images"].get(instance.image_id, AGENT_CONFIG["default"])
    settings = {}
    for part in str(mode).split(","):
        key, _, value = part.strip().partition("=")
        if key:
            settings[key] = value.strip()
    return settings


def agent_version(instance: Any) -> str:
    return agent_settings(instance).get("version") or DEFAULT_AGENT_VERSION


def agent_online(instance: Any) -> bool:
    if instance.state != "running":
        return False
    settings = agent_settings(instance)
    if "offline" in settings:
        return False
    started = getattr(instance, STARTED_ATTRIBUTE, None)
    if started is not None:
        since, delay = started, float(settings.get("start") or 0)
    else:
        since, delay = instance.launch_time, float(settings.get("delay") or 0)
    if since.tzinfo is None:
        since = since.replace(tzinfo=datetime.timezone.utc)
    return (datetime.datetime.now(datetime.timezone.utc) - since).total_seconds() >= delay


def _instances(account_id: str, region: str) -> list[Any]:
    return list(_ec2(account_id, region).all_instances())


# --------------------------------------------------------------------- the command
class AgentCommand(ssm_models.Command):
    """moto's Command, with real targeting, parameters and per-instance invocations."""

    def __init__(self, backend: Any, document: Any, params: dict[str, Any], kwargs: dict[str, Any]):
        self._backend = backend
        self.document = document
        self.resolved, self.env_vars = _resolve_parameters(backend, document, kwargs.get("parameters") or {})
        self.cloudwatch_output_config = params.get("CloudWatchOutputConfig") or {}
        self.document_version = document.document_version
        self.agent_invocations: list[agent.Invocation] = []
        super().__init__(account_id=backend.account_id, backend_region=backend.region_name, **kwargs)
        self.status = "Pending"
        self.status_details = "Pending"

    def _get_instance_ids_from_targets(self) -> list[str]:
        ids: list[str] = []
        ec2 = _ec2(self.account_id, self.backend_region)
        for target in self.targets:
            key, values = target.get("Key", ""), target.get("Values", [])
            if key == "InstanceIds":
                ids += values
            elif key.startswith("tag:") or key == "tag-key":
                for reservation in ec2.all_reservations(filters={key: values}):
                    ids += [i.id for i in reservation.instances if agent_online(i)]
            else:
                raise _Err("InvalidTarget", f"local stack: unsupported target key {key}")
        return ids

    def invocation_response(self, instance_id: str, plugin_name: str) -> dict[str, Any]:
        return {}  # replaced by agent_invocations

    def render(self, text: str) -> str:
        def sub(match: re.Match) -> str:
            name = match.group(1).strip()
            if name.startswith("ssm:"):
                try:
                    return self._backend.get_parameter(name[4:]).value
                except Exception:
                    return match.group(0)
            if name in self.resolved:
                return self.resolved[name]
            return match.group(0)

        return re.sub(r"\{\{\s*([^{}]+?)\s*\}\}", sub, text)

    def refresh(self) -> None:
        invs = self.agent_invocations
        statuses = [i.status for i in invs]
        self.completed_count = sum(1 for i in invs if i.done.is_set())
        self.error_count = sum(1 for s in statuses if s in ("Failed", "TimedOut"))
        if not invs:
            return
        if any(s == "Cancelling" for s in statuses):
            self.status = self.status_details = "Cancelling"
        elif not all(i.done.is_set() for i in invs):
            self.status = self.status_details = "InProgress"
        elif all(s == "Success" for s in statuses):
            self.status = self.status_details = "Success"
        elif any(s == "Cancelled" for s in statuses):
            self.status = self.status_details = "Cancelled"
        elif any(s == "TimedOut" for s in statuses):
            self.status, self.status_details = "TimedOut", "TimedOut"
        else:
            self.status = self.status_details = "Failed"

    def response_object(self) -> dict[str, Any]:
        self.refresh()
        out = super().response_object()
        out["DocumentVersion"] = self.document_version
        out["CloudWatchOutputConfig"] = self.cloudwatch_output_config
        return out

    def find(self, instance_id: str) -> agent.Invocation:
        for inv in self.agent_invocations:
            if inv.instance_id == instance_id:
                return inv
        raise _Err("InvocationDoesNotExist", "")

    def get_invocation(self, instance_id: str, plugin_name: str | None) -> dict[str, Any]:
        inv = self.find(instance_id)
        if plugin_name:
            plugin = next((p for p in inv.plugins if p.name == plugin_name), None)
            if plugin is None:
                raise _Err("InvalidPluginName", f"Plugin {plugin_name} does not exist")
        elif len(inv.plugins) == 1:
            plugin = inv.plugins[0]
        else:
            raise _Err(
                "InvalidPluginName",
                "The document has more than one step: specify PluginName (the step name)",
            )
        status = plugin.status
        details = plugin.status_details
        if status == "Pending":  # the invocation is running an earlier step
            status, details = inv.status, inv.status_details
        return {
            "CommandId": self.command_id,
            "InstanceId": instance_id,
            "Comment": self.comment,
            "DocumentName": self.document_name,
            "DocumentVersion": self.document_version,
            "PluginName": plugin.name,
            "ResponseCode": plugin.response_code,
            "ExecutionStartDateTime": plugin.start.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if plugin.start else "",
            "ExecutionElapsedTime": inv.elapsed(),
            "ExecutionEndDateTime": plugin.end.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if plugin.end else "",
            "Status": status,
            "StatusDetails": details,
            "StandardOutputContent": plugin.stdout[: agent.STDOUT_LIMIT],
            "StandardOutputUrl": "",
            "StandardErrorContent": plugin.stderr[: agent.STDOUT_LIMIT],
            "StandardErrorUrl": "",
            "CloudWatchOutputConfig": {
                "CloudWatchLogGroupName": self.cloudwatch_output_config.get("CloudWatchLogGroupName", ""),
                "CloudWatchOutputEnabled": bool(self.cloudwatch_output_config.get("CloudWatchOutputEnabled")),
            },
        }

    def invocation_summary(self, inv: agent.Invocation, details: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "CommandId": self.command_id,
            "InstanceId": inv.instance_id,
            "InstanceName": "",
            "Comment": self.comment,
            "DocumentName": self.document_name,
            "DocumentVersion": self.document_version,
            "RequestedDateTime": inv.requested,
            "Status": inv.status,
            "StatusDetails": inv.status_details,
            "StandardOutputUrl": "",
            "StandardErrorUrl": "",
            "ServiceRole": self.service_role_arn,
            "CloudWatchOutputConfig": {
                "CloudWatchLogGroupName": self.cloudwatch_output_config.get("CloudWatchLogGroupName", ""),
                "CloudWatchOutputEnabled": bool(self.cloudwatch_output_config.get("CloudWatchOutputEnabled")),
            },
        }
        if details:
            out["CommandPlugins"] = [p.to_dict(self, inv.instance_id) for p in inv.plugins]
        return out


def _document_steps(document: Any) -> list[dict[str, Any]]:
    content = document.content_json
    if "mainSteps" in content:
        return list(content["mainSteps"])
    # schema 1.2: runtimeConfig {plugin: {properties: [...]}}
    steps = []
    for action, cfg in (content.get("runtimeConfig") or {}).items():
        props = cfg.get("properties") or []
        if isinstance(props, dict):
            props = [props]
        for prop in props:
            steps.append({"action": action, "name": action, "inputs": prop})
    return steps


def _resolve_parameters(backend: Any, document: Any, given: dict[str, list[str]]) -> tuple[dict[str, str], dict[str, str]]:
    declared = document.content_json.get("parameters") or {}
    unknown = [k for k in given if k not in declared]
    if unknown:
        raise _Err("InvalidParameters", f"Parameters {unknown} are not defined in the document")
    resolved: dict[str, str] = {}
    env: dict[str, str] = {}
    for name, spec in declared.items():
        spec = spec or {}
        if name in given:
            values = given[name]
            if isinstance(values, str):
                values = [values]
        elif "default" in spec:
            default = spec["default"]
            values = default if isinstance(default, list) else [default]
        else:
            raise _Err("InvalidParameters", f"Parameter {name} is required and has no default value")
        values = ["" if v is None else (str(v).lower() if isinstance(v, bool) else str(v)) for v in values]
        pattern = spec.get("allowedPattern")
        if pattern:
            for v in values:
                if re.search(pattern, v, re.DOTALL) is None:
                    raise _Err(
                        "InvalidParameters",
                        f"Parameter \"{name}\" \"{v}\" failed to satisfy constraint: Member must satisfy regular expression pattern: {pattern}",
                    )
        allowed = spec.get("allowedValues")
        if allowed:
            for v in values:
                if v not in [str(a) for a in allowed]:
                    raise _Err("InvalidParameters", f"Parameter {name} value {v} is not one of {allowed}")
        value = values[0] if spec.get("type", "String") in ("String", "Integer", "Boolean") and values else ",".join(values)
        resolved[name] = value
        if spec.get("interpolationType") == "ENV_VAR":
            env[f"SSM_{name}"] = value
    return resolved, env


def _send_command(self: SimpleSystemManagerResponse) -> ActionResult:
    backend = self.ssm_backend
    name = self._get_param("DocumentName")
    if not name:
        raise _Err("ValidationException", "DocumentName is required")
    documents = backend._documents.get(name)
    if documents is None:
        raise _Err("InvalidDocument", "The specified document does not exist.")
    version = self._get_param("DocumentVersion")
    document = documents.find(document_version=version) if version else documents.get_default_version()
    if document.document_type != "Command":
        raise _Err("InvalidDocument", f"Document {name} is not a Command document")
    instance_ids = self._get_param("InstanceIds", [])
    targets = self._get_param("Targets", [])
    if not instance_ids and not targets:
        raise _Err("ValidationException", "Specify InstanceIds or Targets")
    kwargs = {
        "comment": self._get_param("Comment", ""),
        "document_name": name,
        "timeout_seconds": self._get_int_param("TimeoutSeconds"),
        "instance_ids": list(instance_ids),
        "max_concurrency": self._get_param("MaxConcurrency", "50"),
        "max_errors": self._get_param("MaxErrors", "0"),
        "notification_config": self._get_param("NotificationConfig"),
        "output_s3_bucket_name": self._get_param("OutputS3BucketName", ""),
        "output_s3_key_prefix": self._get_param("OutputS3KeyPrefix", ""),
        "output_s3_region": self._get_param("OutputS3Region", ""),
        "parameters": self._get_param("Parameters", {}),
        "service_role_arn": self._get_param("ServiceRoleArn", ""),
        "targets": targets,
    }
    params = {"CloudWatchOutputConfig": self._get_param("CloudWatchOutputConfig")}
    with _LOCK:
        command = AgentCommand(backend, document, params, kwargs)
        ec2 = _ec2(backend.account_id, backend.region_name)
        instances = []
        bad = []
        for iid in command.instance_ids:
            inst = ec2.get_instance_by_id(iid)
            if inst is None or not agent_online(inst):
                bad.append(iid)
            else:
                instances.append(inst)
        if bad:
            raise _Err(
                "InvalidInstanceId",
                f"Instances [{bad}] not in a valid state for account {backend.account_id}",
            )
        command.instance_ids = [i.id for i in instances]
        command.target_count = len(instances)
        command.completed_count = 0
        steps = _document_steps(document)
        for inst in instances:
            inv = agent.Invocation(command, inst, steps, platform_of(inst))
            command.agent_invocations.append(inv)
            RUNNING.setdefault(inst.id, []).append(inv)
        backend._commands.append(command)
        response = command.response_object()
        # The request returns at once; the agent picks the command up on its own thread.
        for inv in command.agent_invocations:
            threading.Thread(target=inv.run, name=f"ssm-agent-{inv.instance_id}", daemon=True).start()
    return ActionResult({"Command": response})


RUNNING: dict[str, list[agent.Invocation]] = {}


def _command(backend: Any, command_id: str) -> AgentCommand:
    for c in backend._commands:
        if c.command_id == command_id:
            return c
    raise _Err("InvalidCommandId", "Invalid command id.")


def _get_command_invocation(self: SimpleSystemManagerResponse) -> ActionResult:
    command = _command(self.ssm_backend, self._get_param("CommandId"))
    if not isinstance(command, AgentCommand):
        raise _Err("InvocationDoesNotExist", "")
    return ActionResult(command.get_invocation(self._get_param("InstanceId"), self._get_param("PluginName")))


def _list_command_invocations(self: SimpleSystemManagerResponse) -> ActionResult:
    command_id = self._get_param("CommandId")
    instance_id = self._get_param("InstanceId")
    details = bool(self._get_param("Details", False))
    commands = [_command(self.ssm_backend, command_id)] if command_id else list(self.ssm_backend._commands)
    out = []
    for command in commands:
        if not isinstance(command, AgentCommand):
            continue
        for inv in command.agent_invocations:
            if instance_id and inv.instance_id != instance_id:
                continue
            out.append(command.invocation_summary(inv, details))
    return ActionResult({"CommandInvocations": out})


def _cancel_command(self: SimpleSystemManagerResponse) -> ActionResult:
    command = _command(self.ssm_backend, self._get_param("CommandId"))
    only = set(self._get_param("InstanceIds", []) or [])
    if isinstance(command, AgentCommand):
        for inv in command.agent_invocations:
            if not only or inv.instance_id in only:
                inv.stop("cancel")
    return EmptyResult()


def _describe_instance_information(self: SimpleSystemManagerResponse) -> ActionResult:
    backend = self.ssm_backend
    wanted: dict[str, list[str]] = {}
    for f in self._get_param("InstanceInformationFilterList", []) or []:
        wanted[f["key"]] = f.get("valueSet", [])
    for f in self._get_param("Filters", []) or []:
        wanted[f["Key"]] = f.get("Values", [])
    out = []
    for inst in _instances(backend.account_id, backend.region_name):
        if not agent_online(inst):
            continue
        platform = platform_of(inst)
        info = {
            "InstanceId": inst.id,
            "PingStatus": "Online",
            "LastPingDateTime": datetime.datetime.now(datetime.timezone.utc),
            "AgentVersion": agent_version(inst),
            "IsLatestVersion": agent_version(inst) == DEFAULT_AGENT_VERSION,
            "PlatformType": platform,
            "PlatformName": "Microsoft Windows Server 2022 Datacenter" if platform == "Windows" else "Amazon Linux",
            "PlatformVersion": "10.0.20348" if platform == "Windows" else "2023",
            "ResourceType": "EC2Instance",
            "IPAddress": inst.private_ip,
            "ComputerName": f"{inst.id}.local",
            "SourceId": inst.id,
            "SourceType": "AWS::EC2::Instance",
        }
        keep = True
        for key, values in wanted.items():
            if key == "InstanceIds" and inst.id not in values:
                keep = False
            elif key == "PingStatus" and "Online" not in values:
                keep = False
            elif key == "PlatformTypes" and platform not in values:
                keep = False
            elif key == "ResourceType" and "EC2Instance" not in values:
                keep = False
            elif key.startswith("tag:") and _tags(inst).get(key[4:]) not in values:
                keep = False
        if keep:
            out.append(info)
    return ActionResult({"InstanceInformationList": out})


def apply() -> None:
    SimpleSystemManagerResponse.send_command = _send_command
    SimpleSystemManagerResponse.get_command_invocation = _get_command_invocation
    SimpleSystemManagerResponse.list_command_invocations = _list_command_invocations
    SimpleSystemManagerResponse.cancel_command = _cancel_command
    SimpleSystemManagerResponse.describe_instance_information = _describe_instance_information

    # Stopping or terminating an instance kills what the agent runs on it, and its OS forgets a
    # shutdown it had scheduled (the OS halts).
    from moto.ec2.models.instances import Instance

    from . import os_shutdown

    for method in ("terminate", "stop"):
        original = getattr(Instance, method)

        def wrapped(self: Any, _original: Any = original) -> Any:
            result = _original(self)
            for inv in RUNNING.pop(self.id, []):
                inv.stop("terminated")
            os_shutdown.forget(self.id)
            return result

        setattr(Instance, method, wrapped)

    # Starting a stopped instance: the agent comes online `start=N` s later, and LaunchTime is the
    # time of this start, as EC2 reports it.
    original_start = Instance.start

    def start(self: Any) -> Any:
        previous = original_start(self)
        if previous.name == "stopped":
            from moto.core.utils import utcnow

            setattr(self, STARTED_ATTRIBUTE, datetime.datetime.now(datetime.timezone.utc))
            self.launch_time = utcnow()
        return previous

    Instance.start = start
