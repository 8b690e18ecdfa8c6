"""LocalStack: start the emulator in a subprocess, route its events, run Lambda targets."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from typing import Any, Callable

from .lambda_runtime import LambdaFunction
from .router import Router

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ACCESS_KEY = "testing"
SECRET_KEY = "testing"


class LocalStack:
    """Context manager: `with LocalStack() as stack: stack.client("codepipeline")...`

    Everything it starts (the server, Lambda sandboxes, the agent's scripts inside the
    server) is stopped on exit. `work_dir` holds the emulated instances' folders and the
    logs (server.log, lambda-<name>.log); a temporary folder, removed on exit, by default.
    """

    def __init__(self, region: str = "us-east-1", work_dir: str | None = None, keep_work_dir: bool | None = None, python: str | None = None):
        self.region = region
        self._own_dir = work_dir is None
        self.work_dir = work_dir or tempfile.mkdtemp(prefix="ec2build-localstack-")
        self.keep_work_dir = (not self._own_dir) if keep_work_dir is None else keep_work_dir
        self.python = python or sys.executable
        self.endpoint = ""
        self.port = 0
        self.router: Router | None = None
        self.functions: dict[str, LambdaFunction] = {}
        self._proc: subprocess.Popen | None = None
        self._log_lines: list[str] = []

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> "LocalStack":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self, timeout: float = 60) -> "LocalStack":
        os.makedirs(os.path.join(self.work_dir, "instances"), exist_ok=True)
        env = dict(os.environ)
        env.pop("MOTO_PORT", None)
        env["PYTHONUNBUFFERED"] = "1"
        self._proc = subprocess.Popen(
            [self.python, "-m", "tests.localstack.server", "--port", "0", "--work-dir", os.path.join(self.work_dir, "instances")],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        ready = threading.Event()
        log = open(os.path.join(self.work_dir, "server.log"), "a")

        def pump() -> None:
            assert self._proc and self._proc.stdout
            for raw in iter(self._proc.stdout.readline, b""):
                line = raw.decode("utf-8", "replace")
                log.write(line)
                log.flush()
                self._log_lines.append(line)
                if line.startswith("LOCALSTACK READY "):
                    self.endpoint = line.split()[2]
                    ready.set()
            log.close()

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.1):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("local stack server did not start:\n" + "".join(self._log_lines[-40:]))
        self.port = int(self.endpoint.rsplit(":", 1)[1])
        self.router = Router(self.endpoint, self.region)
        self.router.start()
        return self

    def stop(self) -> None:
        if self.router:
            self.router.stop()
        for fn in list(self.functions.values()):
            fn.stop()
        self.functions.clear()
        if self._proc and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait()
        if self._own_dir and not self.keep_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    # ------------------------------------------------------------------ clients
    def env(self, **extra: str) -> dict[str, str]:
        """Environment for a process (e.g. a Rust Lambda) talking to this stack."""
        out = {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_EC2_METADATA_DISABLED": "true",
            "PATH": os.path.dirname(self.python) + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"),
        }
        out.update(extra)
        return out

    def client(self, service_name: str, region: str | None = None) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            service_name,
            endpoint_url=self.endpoint,
            region_name=region or self.region,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def aws_cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run the AWS CLI of the venv against this stack (`--output json`)."""
        cli = os.path.join(os.path.dirname(self.python), "aws")
        return subprocess.run(
            [cli, "--endpoint-url", self.endpoint, "--output", "json", *args],
            env={**os.environ, **self.env()},
            capture_output=True,
            text=True,
            check=check,
        )

    # ------------------------------------------------------------------ test API
    def _api(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.endpoint}/_ec2build/{path}", data=data, method=method)
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def set_agent(self, default: str | None = None, images: dict[str, str | None] | None = None) -> dict[str, Any]:
        """SSM agent availability and version: "online", "offline", "delay=<seconds>" or
        "version=<a.b.c.d>" (what DescribeInstanceInformation reports as AgentVersion; default
        3.3.2746.0), several joined by commas, by default and/or per image id (None removes an
        image rule). The instance tag ec2build:local-agent wins."""
        body: dict[str, Any] = {}
        if default is not None:
            body["default"] = default
        if images is not None:
            body["images"] = images
        return self._api("PUT", "agent", body)

    def agent_invocations(self) -> list[dict[str, Any]]:
        return self._api("GET", "agent/invocations")["invocations"]

    def throttle(self, **counts: int) -> dict[str, Any]:
        """Answer the next `count` calls of each operation (by its API name, e.g.
        PollForJobs=2) with ThrottlingException, from any client of the stack. Returns the
        throttles still pending and how many calls were throttled so far."""
        return self._api("PUT", "throttle", counts)

    def throttling(self) -> dict[str, Any]:
        """Throttles still pending and calls throttled so far, by operation."""
        return self._api("GET", "throttle")

    def shutdowns(self, instance_id: str | None = None) -> list[dict[str, Any]]:
        """Shutdowns the emulated instances asked for themselves (their `shutdown` command),
        oldest first: InstanceId, DelaySeconds, When, Message, Argv, Requested, At, Cancel,
        Result (scheduled, cancelled, terminated, stopped, not running)."""
        path = "shutdown" + (f"?instance={instance_id}" if instance_id else "")
        return self._api("GET", path)["requests"]

    def spot_interrupt(self, instance_id: str, notice_seconds: float = 120) -> dict[str, Any]:
        """Posts a spot interruption notice for a running spot instance (its metadata's
        spot/instance-action: action terminate, time now + notice_seconds) and terminates it
        after notice_seconds (AWS gives 120) with state reason Server.SpotInstanceTermination."""
        return self._api("POST", "spot-interrupt", {"InstanceId": instance_id, "NoticeSeconds": notice_seconds})

    def jobs(self, pipeline: str | None = None) -> list[dict[str, Any]]:
        """CodePipeline jobs with their status (Queued, Dispatched, InProgress, Succeeded, Failed),
        oldest first, optionally of one pipeline: what no CodePipeline call shows."""
        from urllib.parse import quote

        return self._api("GET", "jobs" + (f"?pipeline={quote(pipeline)}" if pipeline else ""))["jobs"]

    def server_log(self) -> str:
        return "".join(self._log_lines)

    # ------------------------------------------------------------------ Lambda targets
    def lambda_function(
        self,
        name: str,
        *,
        binary: str | None = None,
        handler: Callable[[Any], Any] | None = None,
        env: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> LambdaFunction:
        """Start a Lambda target: a real binary under the Runtime API emulator, or a
        callable. The binary gets `.env()` plus `env`."""
        if name in self.functions:
            raise ValueError(f"function {name} exists")
        fn = LambdaFunction(
            name,
            binary=binary,
            handler=handler,
            env={**self.env(), **(env or {})},
            region=self.region,
            log_path=os.path.join(self.work_dir, f"lambda-{name}.log"),
            **kwargs,
        )
        self.functions[name] = fn
        return fn.start()
