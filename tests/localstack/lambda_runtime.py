"""A Lambda Runtime API emulator: runs a real Lambda binary (or a Python callable).

Each sandbox is one child process with its own Runtime API endpoint
(AWS_LAMBDA_RUNTIME_API=127.0.0.1:<port>) serving:
  GET  /2018-06-01/runtime/invocation/next
  POST /2018-06-01/runtime/invocation/<request id>/response
  POST /2018-06-01/runtime/invocation/<request id>/error
  POST /2018-06-01/runtime/init/error
Invocations are asynchronous (like EventBridge -> Lambda): `invoke()` queues the event and
returns at once; `copies` delivers every event that many times (at-least-once testing).
A sandbox whose process exits is replaced (a new cold start); an invocation that exceeds
the function timeout fails and its sandbox is killed, as on AWS.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

ACCOUNT_ID = "123456789012"
_PREFIX = "/2018-06-01/runtime/"


class Invocation:
    def __init__(self, function: "LambdaFunction", event: Any, attempt: int = 1):
        self.function = function
        self.request_id = str(uuid.uuid4())
        self.event = event
        self.attempt = attempt
        self.status = "Queued"  # Queued | Running | Succeeded | Failed | TimedOut
        self.result: Any = None
        self.error: Any = None
        self.queued_at = time.monotonic()
        self.started_at: float | None = None
        self.pid: int | None = None  # the sandbox process that ran it (a binary target)
        self.ended_at: float | None = None
        self.done = threading.Event()

    def _finish(self, status: str, result: Any = None, error: Any = None) -> bool:
        with self.function._lock:
            if self.done.is_set():
                return False
            self.status, self.result, self.error = status, result, error
            self.ended_at = time.monotonic()
            self.done.set()
            self.function._changed.notify_all()
        return True

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.started_at

    def __repr__(self) -> str:
        return f"<Invocation {self.function.name} {self.request_id[:8]} {self.status}>"


class _QuietServer(ThreadingHTTPServer):
    """A sandbox killed while waiting on /invocation/next resets its connection: expected, not
    worth a traceback on stderr."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


class _Sandbox:
    """One child process and its Runtime API endpoint."""

    def __init__(self, function: "LambdaFunction", index: int):
        self.function = function
        self.index = index
        self.current: Invocation | None = None
        self.proc: subprocess.Popen | None = None
        self.stopping = False
        self.init_error: Any = None
        sandbox = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path != _PREFIX + "invocation/next":
                    return self._reply(404, {"errorMessage": "not found"})
                inv = sandbox._next()
                if inv is None:  # shutting down: leave the client hanging up
                    return self._reply(500, {"errorMessage": "shutting down"})
                deadline_ms = int((time.time() + function.timeout) * 1000)
                self._reply(
                    200,
                    json.dumps(inv.event).encode(),
                    {
                        "Lambda-Runtime-Aws-Request-Id": inv.request_id,
                        "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                        "Lambda-Runtime-Invoked-Function-Arn": function.arn,
                        "Lambda-Runtime-Trace-Id": f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0",
                    },
                )

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                parts = self.path[len(_PREFIX):].split("/") if self.path.startswith(_PREFIX) else []
                if parts == ["init", "error"]:
                    sandbox.init_error = body
                    function._log(f"[runtime api] init error: {body}\n")
                    return self._reply(202, {"status": "OK"})
                if len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
                    inv = sandbox.current
                    if inv is None or inv.request_id != parts[1]:
                        return self._reply(400, {"errorMessage": "unknown request id", "errorType": "InvalidRequestID"})
                    sandbox.current = None
                    if parts[2] == "response":
                        inv._finish("Succeeded", result=body)
                    else:
                        inv._finish("Failed", error=body)
                        function._maybe_retry(inv)
                    return self._reply(202, {"status": "OK"})
                return self._reply(404, {"errorMessage": "not found"})

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.api = f"127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _next(self) -> Invocation | None:
        while not self.stopping:
            try:
                inv = self.function._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if inv is None:
                return None
            with self.function._lock:
                inv.status = "Running"
                inv.started_at = time.monotonic()
                inv.pid = self.proc.pid if self.proc else None
                injected = self.function.failing > 0
                if injected:
                    self.function.failing -= 1
            if injected:
                # A test asked for this invocation to fail: the function errs without running,
                # and Lambda retries it as it would any failed asynchronous invocation.
                self.function._log(f"[runtime api] {inv.request_id} failed (injected by a test)\n")
                if inv._finish("Failed", error={"errorType": "Injected", "errorMessage": "failure injected by a test"}):
                    self.function._maybe_retry(inv)
                continue
            self.current = inv
            return inv
        return None

    def start_process(self) -> None:
        fn = self.function
        env = dict(fn.env)
        env.update(
            {
                "AWS_LAMBDA_RUNTIME_API": self.api,
                "AWS_LAMBDA_FUNCTION_NAME": fn.name,
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory),
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{fn.name}",
                "AWS_LAMBDA_LOG_STREAM_NAME": f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}",
                "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
                "AWS_EXECUTION_ENV": "AWS_Lambda_provided.al2023",
                "LAMBDA_TASK_ROOT": os.path.dirname(os.path.abspath(fn.binary)),
                "LAMBDA_RUNTIME_DIR": os.path.dirname(os.path.abspath(fn.binary)),
                "_HANDLER": "bootstrap",
                "TZ": ":UTC",
            }
        )
        env.setdefault("AWS_DEFAULT_REGION", env.get("AWS_REGION", "us-east-1"))
        self.proc = subprocess.Popen(
            [fn.binary],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc = self.proc
        threading.Thread(target=self._pump, args=(proc,), daemon=True).start()
        threading.Thread(target=self._watch, args=(proc,), daemon=True).start()

    def _pump(self, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            self.function._log(raw.decode("utf-8", "replace"))
        proc.stdout.close()

    def _watch(self, proc: subprocess.Popen) -> None:
        code = proc.wait()
        if self.stopping:
            return
        fn = self.function
        fn._log(f"[runtime api] sandbox {self.index} exited with {code}\n")
        inv, self.current = self.current, None
        if inv is not None and inv._finish("Failed", error={"errorType": "Runtime.ExitError", "errorMessage": f"exit status {code}"}):
            fn._maybe_retry(inv)
        if fn._running:
            time.sleep(0.2)  # avoid a hot crash loop
            if fn._running and not self.stopping:
                self.start_process()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        self.stopping = True
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=3)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                self.kill()
        if self.proc:
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                pass
        self.server.shutdown()
        self.server.server_close()


class LambdaFunction:
    """A function target: `binary=` path of a Lambda bootstrap, or `handler=` callable."""

    def __init__(
        self,
        name: str,
        *,
        binary: str | None = None,
        handler: Callable[[Any], Any] | None = None,
        env: dict[str, str] | None = None,
        memory: int = 128,
        timeout: float = 60,
        concurrency: int = 1,
        copies: int = 1,
        retries: int = 0,
        region: str = "us-east-1",
        log_path: str | None = None,
    ):
        if (binary is None) == (handler is None):
            raise ValueError("give exactly one of binary= and handler=")
        if binary is not None and not os.access(binary, os.X_OK):
            raise FileNotFoundError(f"Lambda binary not found or not executable: {binary}")
        self.name = name
        self.binary = binary
        self.handler = handler
        self.env = dict(env or {})
        self.env.setdefault("AWS_REGION", region)
        self.memory = memory
        self.timeout = timeout
        self.concurrency = concurrency
        self.copies = copies
        self.retries = retries
        # How many of the next invocations fail without running (a test's fault injection).
        self.failing = 0
        self.arn = f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{name}"
        self.invocations: list[Invocation] = []
        self._queue: "queue.Queue[Invocation | None]" = queue.Queue()
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._log_lines: list[str] = []
        self._log_file = open(log_path, "a") if log_path else None
        self._sandboxes: list[_Sandbox] = []
        self._workers: list[threading.Thread] = []
        self._running = False

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "LambdaFunction":
        self._running = True
        if self.binary is not None:
            for i in range(self.concurrency):
                sandbox = _Sandbox(self, i)
                self._sandboxes.append(sandbox)
                sandbox.start_process()
            threading.Thread(target=self._deadlines, daemon=True).start()
        else:
            for i in range(self.concurrency):
                t = threading.Thread(target=self._callable_worker, daemon=True, name=f"lambda-{self.name}-{i}")
                t.start()
                self._workers.append(t)
        return self

    def stop(self) -> None:
        """Stop the sandboxes (idempotent); queued invocations stay Queued."""
        if not self._running and not self._sandboxes and not self._workers:
            return
        self._running = False
        for _ in range(max(1, self.concurrency)):
            self._queue.put(None)
        for sandbox in self._sandboxes:
            sandbox.stop()
        for t in self._workers:
            t.join(timeout=5)
        self._sandboxes, self._workers = [], []
        if self._log_file:
            self._log_file.close()
            self._log_file = None

    # ------------------------------------------------------------------ invoking
    def invoke(self, event: Any) -> list[Invocation]:
        """Asynchronous invocation (InvocationType=Event): queue `copies` deliveries."""
        out = []
        for _ in range(self.copies):
            out.append(self._enqueue(Invocation(self, json.loads(json.dumps(event)))))
        return out

    def __call__(self, event: Any) -> list[Invocation]:
        return self.invoke(event)

    def _enqueue(self, inv: Invocation) -> Invocation:
        with self._lock:
            self.invocations.append(inv)
            self._changed.notify_all()
        self._queue.put(inv)
        return inv

    def _maybe_retry(self, inv: Invocation) -> None:
        if inv.attempt <= self.retries and self._running:
            self._enqueue(Invocation(self, inv.event, attempt=inv.attempt + 1))

    def fail_next(self, count: int) -> None:
        """Make the next `count` invocations (retries included) fail without running."""
        with self._lock:
            self.failing = count

    def _callable_worker(self) -> None:
        while True:
            inv = self._queue.get()
            if inv is None:
                return
            with self._lock:
                inv.status = "Running"
                inv.started_at = time.monotonic()
                injected = self.failing > 0
                if injected:
                    self.failing -= 1
            if injected:
                if inv._finish("Failed", error={"errorType": "Injected", "errorMessage": "failure injected by a test"}):
                    self._maybe_retry(inv)
                continue
            try:
                result = self.handler(inv.event)  # type: ignore[misc]
            except Exception as exc:
                self._log(f"[callable] {type(exc).__name__}: {exc}\n")
                inv._finish("Failed", error={"errorType": type(exc).__name__, "errorMessage": str(exc)})
                self._maybe_retry(inv)
            else:
                inv._finish("Succeeded", result=result)

    def _deadlines(self) -> None:
        while self._running:
            time.sleep(0.2)
            for sandbox in self._sandboxes:
                inv = sandbox.current
                if inv is not None and inv.started_at is not None and time.monotonic() - inv.started_at > self.timeout:
                    sandbox.current = None
                    if inv._finish("TimedOut", error={"errorType": "Sandbox.Timedout", "errorMessage": f"Task timed out after {self.timeout:.2f} seconds"}):
                        self._log(f"[runtime api] {inv.request_id} timed out\n")
                        sandbox.kill()  # the watcher starts a fresh sandbox
                        self._maybe_retry(inv)

    # ------------------------------------------------------------------ observing
    def _log(self, text: str) -> None:
        with self._lock:
            self._log_lines.append(text)
            if self._log_file:
                self._log_file.write(text)
                self._log_file.flush()

    def logs(self) -> str:
        with self._lock:
            return "".join(self._log_lines)

    def wait_for(self, predicate: Callable[[list[Invocation]], bool], timeout: float = 30) -> list[Invocation]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(list(self.invocations)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{self.name}: condition not met in {timeout}s; invocations={self.invocations}")
                self._changed.wait(min(remaining, 0.5))
            return list(self.invocations)

    def wait_idle(self, timeout: float = 30) -> list[Invocation]:
        """Wait until at least one invocation exists and all are finished."""
        return self.wait_for(lambda invs: bool(invs) and all(i.done.is_set() for i in invs), timeout)
