"""Cold start and peak memory of a Lambda binary under a minimal Runtime API of the benchmark's own.

One cold start = one fresh process. The clock starts just before `Popen` and stops when the
runtime POSTs the first response. When the process asks for its second event it has finished the
first invocation: its peak resident set (`VmHWM` of /proc/<pid>/status), with the split of the
current one into file pages (`RssFile`) and anonymous memory (`RssAnon`), is read then, and the
process is killed. The local stack's own emulator (tests/localstack/lambda_runtime.py) is not used
here because it queues invocations asynchronously and keeps sandboxes alive, which would add queue
latency to the figure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_PREFIX = "/2018-06-01/runtime/invocation/"


@dataclass
class ColdStart:
    first_next: float  # s from process start to its first GET /next (init)
    first_response: float  # s from process start to the first response
    peak_rss_kb: int  # VmHWM after the first invocation
    response: Any
    rss_file_kb: int = 0  # of the resident set then: pages of files (the binary, libc)
    rss_anon_kb: int = 0  # and anonymous memory (heap, stacks, relocated data)


def _memory(pid: int) -> dict[str, int]:
    """VmHWM, RssFile and RssAnon of /proc/<pid>/status, in kB."""
    found = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key = line.split(":", 1)[0]
            if key in ("VmHWM", "RssFile", "RssAnon"):
                found[key] = int(line.split()[1])
    if "VmHWM" not in found:
        raise RuntimeError("no VmHWM")
    return found


class _Run:
    def __init__(self, event: Any):
        self.event = json.dumps(event).encode()
        self.request_id = str(uuid.uuid4())
        self.t0 = 0.0
        self.t_next: float | None = None
        self.t_response: float | None = None
        self.response: Any = None
        self.error: Any = None
        self.pid = 0
        self.memory: dict[str, int] | None = None
        self.done = threading.Event()


class RuntimeApi:
    """One HTTP endpoint serving one cold start at a time."""

    def __init__(self) -> None:
        self.run: _Run | None = None
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, code: int, data: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                run = api.run
                now = time.perf_counter()
                if run is None or self.path != _PREFIX + "next":
                    return self._reply(404, b"{}")
                if run.t_next is None:
                    run.t_next = now
                    return self._reply(200, run.event, {
                        "Lambda-Runtime-Aws-Request-Id": run.request_id,
                        "Lambda-Runtime-Deadline-Ms": str(int((time.time() + 60) * 1000)),
                        "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:123456789012:function:bench",
                        "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000;Sampled=0",
                    })
                # Second /next: the first invocation is over. Read the peak, then let the caller kill.
                try:
                    run.memory = _memory(run.pid)
                finally:
                    run.done.set()
                time.sleep(5)  # the process is killed meanwhile; never answered

            def do_POST(self) -> None:
                run = api.run
                now = time.perf_counter()
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if run is not None and self.path == f"{_PREFIX}{run.request_id}/response":
                    run.t_response = now
                    run.response = json.loads(raw or b"null")
                elif run is not None and self.path == f"{_PREFIX}{run.request_id}/error":
                    run.t_response = now
                    run.error = json.loads(raw or b"null")
                elif run is not None and self.path.endswith("/init/error"):
                    run.error = json.loads(raw or b"null")
                    run.done.set()
                self._reply(202, b'{"status":"OK"}')

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def cold_start(self, binary: str, env: dict[str, str], event: Any, timeout: float = 30) -> ColdStart:
        run = _Run(event)
        self.run = run
        full_env = {
            **env,
            "AWS_LAMBDA_RUNTIME_API": self.address,
            "AWS_LAMBDA_FUNCTION_NAME": "bench",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/bench",
            "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_EXECUTION_ENV": "AWS_Lambda_provided.al2023",
            "LAMBDA_TASK_ROOT": os.path.dirname(binary),
            "_HANDLER": "bootstrap",
            "TZ": ":UTC",
        }
        run.t0 = time.perf_counter()
        proc = subprocess.Popen([binary], env=full_env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        run.pid = proc.pid
        try:
            if not run.done.wait(timeout):
                raise TimeoutError(f"{binary}: no second /next within {timeout}s")
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
            self.run = None
        if run.error is not None or run.t_response is None or run.t_next is None or run.memory is None:
            raise RuntimeError(f"{binary}: first invocation failed: {run.error!r}")
        return ColdStart(run.t_next - run.t0, run.t_response - run.t0, run.memory["VmHWM"], run.response,
                         run.memory.get("RssFile", 0), run.memory.get("RssAnon", 0))


@dataclass
class CliRun:
    """One run of a command-line binary (the `ec2-build` CLI), start to exit."""
    seconds: float  # from just before Popen to the process's exit
    peak_rss_kb: int  # peak resident set, KiB (GNU time; else wait4's ru_maxrss)
    exit_code: int
    stdout: str


# GNU time reports its child's peak resident set. wait4's ru_maxrss of a child forked from this
# (large) Python process would include the parent's pages the child held before its exec.
GNU_TIME = "/usr/bin/time"


def cli_run(binary: str, args: list[str], env: dict[str, str], timeout: float = 30) -> CliRun:
    """Run `binary args` once with `env`; time to exit and peak resident set (KiB, from GNU time
    when it is installed, else wait4's, which then includes the bench's own pages)."""
    import tempfile

    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss_file:
        wrapper = [GNU_TIME, "-f", "%M", "-o", rss_file.name] if os.access(GNU_TIME, os.X_OK) else []
        t0 = time.perf_counter()
        proc = subprocess.Popen([*wrapper, binary, *args], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        timer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
        timer.start()
        try:
            out = proc.stdout.read().decode() if proc.stdout else ""
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        reported = rss_file.read().strip().splitlines()
        peak_kb = int(reported[-1]) if wrapper and reported and reported[-1].isdigit() else usage.ru_maxrss
    return CliRun(seconds, peak_kb, proc.returncode, out)
