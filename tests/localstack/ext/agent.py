"""The local SSM agent: runs the Linux steps of a Command document on this machine.

One work folder per emulated instance (`<work root>/<instance id>/`); each command step's
script is written to `orchestration/<command id>/<step>/_script.sh` and run with bash in the
instance folder (the agent's default working directory: like the real agent, which starts a
script in its default working directory and not in the orchestration folder,
agent/plugins/runscript/runscript.go), in its own process group, with:
  * SSM_<Name> environment variables for parameters with `interpolationType: ENV_VAR`;
  * `{{ Name }}` / `{{ ssm:/param }}` references in step inputs replaced textually (the
    agent does that for every parameter; ENV_VAR only adds the variable);
  * SSM_COMMAND_ID (the real agent sets it for aws:runShellScript and aws:runPowerShellScript
    since 3.0.284.0), AWS_SSM_INSTANCE_ID / AWS_SSM_REGION_NAME (set by the real agent too), and the AWS
    CLI of the project venv pointed at the emulator (AWS_ENDPOINT_URL, dummy credentials);
  * AWS_EC2_METADATA_SERVICE_ENDPOINT: the emulated instance's metadata service (IMDSv2,
    ext/ec2_spot.py), where AWS has http://169.254.169.254;
  * `shutdown` first on PATH: the emulated instance's own (ext/os_shutdown.py), which stops or
    terminates the instance in moto and never this machine (EC2BUILD_LOCAL_API is the stack);
  * the step's `timeoutSeconds` (default 3600) -> TimedOut; CancelCommand -> Cancelled;
    terminating the instance kills the script;
  * `pickup=N` in the instance's agent settings: the command stays Pending N seconds before it
    runs (a real agent picks commands up from its message service, not at once).
"""

from __future__ import annotations

import datetime
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

STDOUT_LIMIT = 24000  # GetCommandInvocation StandardOutputContent / StandardErrorContent
OUTPUT_LIMIT = 2500  # ListCommandInvocations CommandPlugins[].Output
STOPPED_EXIT_CODE = 137  # what the agent reports for a script it had to kill
DEFAULT_STEP_TIMEOUT = 3600

WORK_ROOT = os.environ.get("EC2BUILD_LOCAL_WORK_DIR") or tempfile.mkdtemp(prefix="ec2build-agent-")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class Plugin:
    def __init__(self, step: dict[str, Any]):
        self.step = step
        self.name = step.get("name") or step.get("action", "")
        self.action = step.get("action", "")
        self.status = "Pending"
        self.status_details = "Pending"
        self.response_code = -1
        self.stdout = ""
        self.stderr = ""
        self.start: datetime.datetime | None = None
        self.end: datetime.datetime | None = None

    def output(self) -> str:
        text = self.stdout
        if self.stderr:
            text += "\n----------ERROR-------\n" + self.stderr
        return text[:OUTPUT_LIMIT]

    def to_dict(self, command: Any, instance_id: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Name": self.name,
            "Status": self.status,
            "StatusDetails": self.status_details,
            "ResponseCode": self.response_code,
            "Output": self.output(),
            "StandardOutputUrl": "",
            "StandardErrorUrl": "",
            "OutputS3Region": command.backend_region,
            "OutputS3BucketName": command.output_s3_bucket_name,
            "OutputS3KeyPrefix": command.output_s3_key_prefix,
        }
        if self.start:
            out["ResponseStartDateTime"] = self.start
        if self.end:
            out["ResponseFinishDateTime"] = self.end
        return out


class Invocation:
    def __init__(self, command: Any, instance: Any, steps: list[dict[str, Any]], platform: str):
        self.command = command
        self.instance = instance
        self.instance_id = instance.id
        self.platform = platform
        self.plugins = [Plugin(s) for s in steps]
        self.status = "Pending"
        self.status_details = "Pending"
        self.proc: subprocess.Popen | None = None
        self.stop_reason: str | None = None  # "cancel" | "terminated"
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.requested = _now()
        self.start: datetime.datetime | None = None
        self.end: datetime.datetime | None = None

    # ------------------------------------------------------------------ control
    def stop(self, reason: str) -> None:
        with self.lock:
            if self.done.is_set():
                return
            self.stop_reason = reason
            if reason == "cancel":
                self.status = self.status_details = "Cancelling"
            proc = self.proc
        if proc is not None:
            _kill_group(proc)

    # ------------------------------------------------------------------ run
    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:  # never leave an invocation InProgress
            import traceback

            traceback.print_exc()
            for p in self.plugins:
                if p.status in ("Pending", "InProgress"):
                    p.status = p.status_details = "Failed"
                    p.stderr += f"local agent error: {exc}\n"
            self._finish()

    def _run(self) -> None:
        from .ssm import agent_settings

        pickup = float(agent_settings(self.instance).get("pickup") or 0)
        deadline = time.monotonic() + pickup
        while time.monotonic() < deadline and not self.stop_reason:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        with self.lock:
            if self.stop_reason:
                self._finish()
                return
            self.status = self.status_details = "InProgress"
            self.start = _now()
        stop_all = False
        for plugin in self.plugins:
            if stop_all or self.stop_reason:
                break
            selected, why = _precondition(plugin.step, self.platform)
            plugin.start = _now()
            if not selected:
                plugin.status = plugin.status_details = "Success"
                plugin.response_code = 0
                plugin.stdout = f"Step execution skipped due to unsatisfied preconditions: {why}"
                plugin.end = _now()
                continue
            if plugin.action != "aws:runShellScript" or self.platform != "Linux":
                plugin.status = plugin.status_details = "Failed"
                plugin.response_code = 1
                plugin.stderr = (
                    f"The local stack's agent cannot run {plugin.action} on a {self.platform} instance"
                )
                plugin.end = _now()
                continue
            self._run_shell(plugin)
            on_failure = (plugin.step.get("onFailure") or "").lower()
            if plugin.status != "Success" and on_failure in ("exit", "successandexit"):
                stop_all = True
            if plugin.step.get("isEnd") in (True, "true"):
                stop_all = True
        self._finish()

    def _run_shell(self, plugin: Plugin) -> None:
        inputs = plugin.step.get("inputs") or {}
        commands = inputs.get("runCommand") or []
        if isinstance(commands, str):
            commands = [commands]
        script = "\n".join(self.command.render(str(c)) for c in commands) + "\n"
        timeout = inputs.get("timeoutSeconds", DEFAULT_STEP_TIMEOUT)
        try:
            timeout = int(self.command.render(str(timeout)))
        except ValueError:
            timeout = DEFAULT_STEP_TIMEOUT
        instance_dir = os.path.join(WORK_ROOT, self.instance_id)
        step_dir = os.path.join(instance_dir, "orchestration", self.command.command_id, _safe(plugin.name))
        os.makedirs(step_dir, exist_ok=True)
        os.makedirs(os.path.join(instance_dir, "home"), exist_ok=True)
        script_path = os.path.join(step_dir, "_script.sh")
        with open(script_path, "w") as f:
            f.write(script)
        cwd = inputs.get("workingDirectory")
        cwd = self.command.render(str(cwd)) if cwd else instance_dir
        if not os.path.isabs(cwd):
            cwd = os.path.join(instance_dir, cwd)
        os.makedirs(cwd, exist_ok=True)
        env = self._environment(instance_dir)

        plugin.status = plugin.status_details = "InProgress"
        sink = _LogSink(self.command, self.instance_id, plugin.name)
        with self.lock:
            if self.stop_reason:
                plugin.status = plugin.status_details = "Cancelled"
                return
            self.proc = proc = subprocess.Popen(
                ["bash", script_path],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        readers = [
            threading.Thread(target=_pump, args=(proc.stdout, plugin, "stdout", sink), daemon=True),
            threading.Thread(target=_pump, args=(proc.stderr, plugin, "stderr", sink), daemon=True),
        ]
        for t in readers:
            t.start()
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
            proc.wait()
        # Background children left by the script would hold the pipes open: end them.
        _kill_group(proc)
        for t in readers:
            t.join(timeout=5)
        sink.close()
        with self.lock:
            self.proc = None
        plugin.end = _now()
        if timed_out:
            plugin.status = "TimedOut"
            plugin.status_details = "ExecutionTimedOut"
            plugin.response_code = STOPPED_EXIT_CODE
        elif self.stop_reason == "cancel":
            plugin.status = plugin.status_details = "Cancelled"
            plugin.response_code = STOPPED_EXIT_CODE
        elif self.stop_reason == "terminated":
            plugin.status = plugin.status_details = "Failed"
            plugin.response_code = STOPPED_EXIT_CODE
            plugin.stderr += "\nlocal stack: the instance was stopped or terminated while the step ran\n"
        else:
            plugin.response_code = proc.returncode
            plugin.status = plugin.status_details = "Success" if proc.returncode == 0 else "Failed"

    def _environment(self, instance_dir: str) -> dict[str, str]:
        from .os_shutdown import INSTANCE_BIN

        bin_dir = os.path.dirname(sys.executable)
        env = {
            # The emulated instance's commands first: `shutdown` must never be this machine's.
            "PATH": os.pathsep.join([INSTANCE_BIN, bin_dir, os.environ.get("PATH", "/usr/bin:/bin")]),
            "HOME": os.path.join(instance_dir, "home"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "TMPDIR": os.environ.get("TMPDIR", "/tmp"),
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{os.environ.get('MOTO_PORT', '5000')}",
            "EC2BUILD_LOCAL_API": f"http://127.0.0.1:{os.environ.get('MOTO_PORT', '5000')}",
            "AWS_ACCESS_KEY_ID": "local-agent",
            "AWS_SECRET_ACCESS_KEY": "local-agent",
            "AWS_REGION": self.command.backend_region,
            "AWS_DEFAULT_REGION": self.command.backend_region,
            "AWS_EC2_METADATA_DISABLED": "true",
            # The instance's metadata service (ext/ec2_spot.py); on AWS the SDKs' and scripts'
            # default, http://169.254.169.254, is the instance's own.
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": f"http://127.0.0.1:{os.environ.get('MOTO_PORT', '5000')}/_ec2build/imds/{self.instance_id}",
            "SSM_COMMAND_ID": self.command.command_id,
            "AWS_SSM_INSTANCE_ID": self.instance_id,
            "AWS_SSM_REGION_NAME": self.command.backend_region,
        }
        env.update(self.command.env_vars)
        return env

    def _finish(self) -> None:
        with self.lock:
            statuses = [p.status for p in self.plugins]
            if self.stop_reason == "cancel":
                self.status = self.status_details = "Cancelled"
                for p in self.plugins:
                    if p.status in ("Pending", "InProgress"):
                        p.status = p.status_details = "Cancelled"
            elif "TimedOut" in statuses:
                self.status, self.status_details = "TimedOut", "ExecutionTimedOut"
            elif "Failed" in statuses or self.stop_reason == "terminated":
                self.status = self.status_details = "Failed"
            else:
                self.status = self.status_details = "Success"
            self.end = _now()
            self.done.set()

    # ------------------------------------------------------------------ views
    def response_code(self) -> int:
        ran = [p for p in self.plugins if p.response_code != -1]
        failed = [p for p in ran if p.status != "Success"]
        if failed:
            return failed[0].response_code
        return ran[-1].response_code if ran else -1

    def elapsed(self) -> str:
        if not self.start:
            return "PT0S"
        end = self.end or _now()
        return f"PT{(end - self.start).total_seconds():.3f}S"


def _precondition(step: dict[str, Any], platform: str) -> tuple[bool, str]:
    pre = step.get("precondition")
    if not pre:
        return True, ""
    cond = pre.get("StringEquals") if isinstance(pre, dict) else None
    if isinstance(cond, list) and len(cond) == 2 and cond[0] == "platformType":
        return cond[1] == platform, f"'StringEquals: [platformType, {cond[1]}]'"
    return False, f"unsupported precondition {pre!r}"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", name)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _pump(stream: Any, plugin: Plugin, which: str, sink: "_LogSink") -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace")
        if which == "stdout":
            if len(plugin.stdout) < STDOUT_LIMIT:
                plugin.stdout = (plugin.stdout + line)[:STDOUT_LIMIT]
        elif len(plugin.stderr) < STDOUT_LIMIT:
            plugin.stderr = (plugin.stderr + line)[:STDOUT_LIMIT]
        sink.write(which, line.rstrip("\n"))
    stream.close()


class _LogSink:
    """CloudWatch output: group CloudWatchLogGroupName or /aws/ssm/<document>, streams
    <command id>/<instance id>/<step name>/stdout|stderr, written as lines arrive."""

    def __init__(self, command: Any, instance_id: str, plugin_name: str):
        cfg = command.cloudwatch_output_config or {}
        self.enabled = bool(cfg.get("CloudWatchOutputEnabled"))
        if not self.enabled:
            return
        from moto.logs.models import logs_backends

        self.backend = logs_backends[command.account_id][command.backend_region]
        self.group = cfg.get("CloudWatchLogGroupName") or f"/aws/ssm/{command.document_name}"
        prefix = f"{command.command_id}/{instance_id}/{plugin_name.replace(':', '-')}"
        self.streams = {"stdout": prefix + "/stdout", "stderr": prefix + "/stderr"}
        self.created: set[str] = set()
        self.lock = threading.Lock()

    def write(self, which: str, line: str) -> None:
        if not self.enabled:
            return
        with self.lock:
            stream = self.streams[which]
            try:
                if self.group not in self.backend.groups:
                    try:
                        self.backend.create_log_group(self.group, {})
                    except Exception:
                        pass
                if stream not in self.created:
                    try:
                        self.backend.create_log_stream(self.group, stream)
                    except Exception:
                        pass
                    self.created.add(stream)
                self.backend.put_log_events(
                    self.group, stream, [{"timestamp": int(time.time() * 1000), "message": line or " "}]
                )
            except Exception:
                import traceback

                traceback.print_exc()

    def close(self) -> None:
        pass
