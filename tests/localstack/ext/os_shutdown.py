"""The emulated instances' own shutdown (the OS halting, not an API call).

On AWS, an OS shutdown of an EBS-backed instance stops it, or terminates it when its
InstanceInitiatedShutdownBehavior is `terminate` (the launch templates set that), and the state
reason is `Client.InstanceInitiatedShutdown` (TerminateInstances gives
`Client.UserInitiatedShutdown`). The local agent puts `instance_bin/shutdown` first on the PATH
of every script it runs; that command posts here (`POST /_ec2build/shutdown`), and this module
stops or terminates the instance in moto, at once or after the delay asked for, which also kills
what the agent runs on it (ext/ssm.py). This machine is never shut down. Every request is kept
for tests (`GET /_ec2build/shutdown`, `stack.shutdowns()`).
"""

from __future__ import annotations

import datetime
import os
import threading
from typing import Any

INSTANCE_BIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "instance_bin")

REQUESTS: list[dict[str, Any]] = []
_TIMERS: dict[str, threading.Timer] = {}
_LOCK = threading.Lock()


def _find(instance_id: str) -> Any:
    from moto.ec2.models import ec2_backends

    for account in list(ec2_backends.keys()):
        for region, backend in list(ec2_backends[account].items()):
            inst = backend.get_instance_by_id(instance_id) if hasattr(backend, "get_instance_by_id") else None
            if inst is not None:
                return inst
    return None


def behavior(instance: Any) -> str:
    """`terminate` or `stop`: the launch template's InstanceInitiatedShutdownBehavior when it has
    one (moto 5.2.5 does not copy it onto the instance), else the instance's own (default stop)."""
    tags = dict(instance.ec2_backend.tags.get(instance.id, {}))
    template_id = tags.get("aws:ec2launchtemplate:id")
    if template_id:
        try:
            arg = {"LaunchTemplateId": template_id}
            if tags.get("aws:ec2launchtemplate:version"):
                arg["Version"] = tags["aws:ec2launchtemplate:version"]
            version = instance.ec2_backend._get_template_from_args(arg)
            value = version.data.get("InstanceInitiatedShutdownBehavior")
            if value:
                return str(value)
        except Exception:
            pass
    return instance.instance_initiated_shutdown_behavior or "stop"


def _halt(instance_id: str, record: dict[str, Any]) -> None:
    with _LOCK:
        _TIMERS.pop(instance_id, None)
    inst = _find(instance_id)
    if inst is None or inst.state not in ("running", "pending"):
        record["Result"] = "not running"
        return
    from moto.ec2.models.instances import StateReason

    how = behavior(inst)
    if how == "terminate":
        inst.terminate()
    else:
        inst.stop()
    inst.state_reason = StateReason(
        "Client.InstanceInitiatedShutdown: Instance initiated shutdown", "Client.InstanceInitiatedShutdown")
    inst._reason = "Instance initiated shutdown"
    record["Result"] = "terminated" if how == "terminate" else "stopped"
    record["Done"] = datetime.datetime.now(datetime.timezone.utc).isoformat()


def request(body: dict[str, Any]) -> dict[str, Any]:
    instance_id = str(body.get("InstanceId") or "")
    now = datetime.datetime.now(datetime.timezone.utc)
    delay = max(0, int(body.get("DelaySeconds") or 0))
    record = {
        "InstanceId": instance_id,
        "Requested": now.isoformat(),
        "Cancel": bool(body.get("Cancel")),
        "DelaySeconds": delay,
        "When": body.get("When"),
        "Message": body.get("Message", ""),
        "Argv": body.get("Argv", []),
        "At": (now + datetime.timedelta(seconds=delay)).isoformat(),
        "Result": "scheduled",
    }
    with _LOCK:
        REQUESTS.append(record)
        previous = _TIMERS.pop(instance_id, None)
        if previous is not None:
            previous.cancel()  # a new shutdown time replaces the scheduled one, as with systemd
        if record["Cancel"]:
            record["Result"] = "cancelled"
            return record
        # The caller is a script on that instance: halt after answering, on a timer either way.
        timer = threading.Timer(max(delay, 0.2), _halt, args=(instance_id, record))
        timer.daemon = True
        _TIMERS[instance_id] = timer
        timer.start()
    return record


def forget(instance_id: str) -> None:
    """The instance stopped or terminated: a shutdown its OS had scheduled never comes."""
    with _LOCK:
        timer = _TIMERS.pop(instance_id, None)
        if timer is not None:
            timer.cancel()
            for record in REQUESTS:
                if record["InstanceId"] == instance_id and record["Result"] == "scheduled":
                    record["Result"] = "forgotten: the instance stopped"


def requests(instance_id: str | None = None) -> list[dict[str, Any]]:
    with _LOCK:
        return [dict(r) for r in REQUESTS if instance_id in (None, r["InstanceId"])]
