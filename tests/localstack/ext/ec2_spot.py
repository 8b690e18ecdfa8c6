"""Instance metadata (IMDSv2), spot interruptions and RunInstances' ClientToken for the emulated
instances.

Instance metadata. On AWS a script on the instance reaches IMDS at http://169.254.169.254 (the
AWS SDKs' and CLI's default, which they let AWS_EC2_METADATA_SERVICE_ENDPOINT override). This
machine has no such address, so the local agent (ext/agent.py) sets
AWS_EC2_METADATA_SERVICE_ENDPOINT for every script it runs to this instance's own endpoint,
`<stack>/_ec2build/imds/<instance id>`, which answers as IMDSv2 does:
  * PUT  /latest/api/token with X-aws-ec2-metadata-token-ttl-seconds (1 to 21600) → a token;
    without the header 400;
  * GET  /latest/meta-data/<item> with X-aws-ec2-metadata-token → the item; without a valid
    token 401; items: instance-id, instance-life-cycle (spot / on-demand), and
    spot/instance-action, which is 404 until a spot interruption notice was posted, then
    {"action": "terminate", "time": "<UTC, second precision>Z"} (EC2 user guide, "Spot Instance
    interruption notices").

Spot interruptions. `interrupt(instance_id, notice_seconds)` (POST /_ec2build/spot-interrupt,
`stack.spot_interrupt(...)`) posts the notice for a running spot instance and, after
`notice_seconds` (AWS: 120; tests shorten it), terminates it in moto with the state reason
`Server.SpotInstanceTermination`, which kills what the agent runs there (ext/ssm.py).

ClientToken. moto 5.2.5 records RunInstances' ClientToken but launches again for a repeated
token. Here a repeated token with the same parameters returns the first launch's reservation
(even when its instance has terminated since), and with other parameters fails with
IdempotentParameterMismatch, as EC2 does ("Ensuring idempotency in Amazon EC2 API requests").
moto fills in "ABCDE" when no token was sent: that is treated as no token.
"""

from __future__ import annotations

import datetime
import secrets
import threading
import time
from typing import Any

NOTICES: dict[str, dict[str, str]] = {}
_TOKENS: dict[str, tuple[str, float]] = {}
_TIMERS: dict[str, threading.Timer] = {}
_LAUNCHES: dict[tuple[str, str, str], tuple[tuple, Any]] = {}
_LOCK = threading.Lock()
MOTO_DEFAULT_CLIENT_TOKEN = "ABCDE"
SPOT_TERMINATION_REASON = ("Server.SpotInstanceTermination: Spot instance termination",
                           "Server.SpotInstanceTermination")


def _find(instance_id: str) -> Any:
    from .os_shutdown import _find as find_instance

    return find_instance(instance_id)


# ---------------------------------------------------------------- instance metadata
def metadata(method: str, instance_id: str, path: str, headers: dict[str, str]) -> tuple[str, str]:
    """The IMDS answer (HTTP status line, text body) for `path` below the instance's endpoint."""
    instance = _find(instance_id)
    if instance is None:
        return "404 Not Found", "no such instance"
    path = "/" + path.strip("/")
    if path == "/latest/api/token":
        if method != "PUT":
            return "405 Method Not Allowed", ""
        try:
            ttl = int(headers.get("x-aws-ec2-metadata-token-ttl-seconds", ""))
        except ValueError:
            return "400 Bad Request", ""
        if not 1 <= ttl <= 21600:
            return "400 Bad Request", ""
        token = secrets.token_urlsafe(32)
        with _LOCK:
            _TOKENS[token] = (instance_id, time.monotonic() + ttl)
        return "200 OK", token
    if method != "GET":
        return "405 Method Not Allowed", ""
    with _LOCK:
        owner, expires = _TOKENS.get(headers.get("x-aws-ec2-metadata-token", ""), ("", 0.0))
    if owner != instance_id or time.monotonic() > expires:
        return "401 Unauthorized", ""
    if path == "/latest/meta-data/instance-id":
        return "200 OK", instance_id
    if path == "/latest/meta-data/instance-life-cycle":
        return "200 OK", "spot" if getattr(instance, "lifecycle", None) == "spot" else "on-demand"
    if path == "/latest/meta-data/spot/instance-action":
        with _LOCK:
            notice = NOTICES.get(instance_id)
        if notice is None:
            return "404 Not Found", ""
        import json

        return "200 OK", json.dumps(notice)
    return "404 Not Found", ""


# ---------------------------------------------------------------- spot interruptions
def interrupt(instance_id: str, notice_seconds: float = 120) -> dict[str, Any]:
    """Posts a spot interruption notice (action terminate) and terminates the instance after
    `notice_seconds`. Raises ValueError for an instance that is not a running spot instance."""
    instance = _find(instance_id)
    if instance is None:
        raise ValueError(f"no instance {instance_id}")
    if getattr(instance, "lifecycle", None) != "spot":
        raise ValueError(f"{instance_id} is not a spot instance: EC2 interrupts only spot instances")
    if instance.state != "running":
        raise ValueError(f"{instance_id} is {instance.state}, not running")
    at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=notice_seconds)
    notice = {"action": "terminate", "time": at.strftime("%Y-%m-%dT%H:%M:%SZ")}
    with _LOCK:
        NOTICES[instance_id] = notice
        timer = threading.Timer(max(0.0, notice_seconds), _terminate, args=(instance_id,))
        timer.daemon = True
        _TIMERS[instance_id] = timer
        timer.start()
    return {"InstanceId": instance_id, "Notice": notice, "NoticeSeconds": notice_seconds}


def _terminate(instance_id: str) -> None:
    with _LOCK:
        _TIMERS.pop(instance_id, None)
    instance = _find(instance_id)
    if instance is None or instance.state not in ("pending", "running", "stopping", "stopped"):
        return
    from moto.ec2.models.instances import StateReason

    instance.terminate()
    instance.state_reason = StateReason(*SPOT_TERMINATION_REASON)
    instance._reason = "Spot instance termination"


# ---------------------------------------------------------------- RunInstances ClientToken
def _launch_parameters(image_id: str, count: int, kwargs: dict[str, Any]) -> tuple:
    template = kwargs.get("launch_template") or {}
    return (image_id, count, kwargs.get("instance_type"), kwargs.get("subnet_id"),
            bool(kwargs.get("instance_market_options")),
            template.get("LaunchTemplateId"), template.get("LaunchTemplateName"))


def apply() -> None:
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.models.instances import InstanceBackend

    original = InstanceBackend.run_instances

    def run_instances(self: Any, image_id: str, count: int, user_data: Any, security_group_names: Any,
                      **kwargs: Any) -> Any:
        token = kwargs.get("client_token")
        if not token or token == MOTO_DEFAULT_CLIENT_TOKEN:
            return original(self, image_id, count, user_data, security_group_names, **kwargs)
        key = (self.account_id, self.region_name, token)
        parameters = _launch_parameters(image_id, count, kwargs)
        with _LOCK:
            earlier = _LAUNCHES.get(key)
        if earlier is not None:
            if earlier[0] != parameters:
                raise EC2ClientError(
                    "IdempotentParameterMismatch",
                    "Arguments on this idempotent request are inconsistent with arguments used in previous request(s).")
            return earlier[1]
        reservation = original(self, image_id, count, user_data, security_group_names, **kwargs)
        with _LOCK:
            _LAUNCHES[key] = (parameters, reservation)
        return reservation

    InstanceBackend.run_instances = run_instances
