"""A counting HTTP proxy between the Lambda binaries and the local stack.

The local stack has no per-operation request counter, so the benchmark points the Lambdas'
`AWS_ENDPOINT_URL` at this proxy, which forwards every request unchanged to the stack and records
the service operation (from `X-Amz-Target` for JSON protocols, `Action=` for query protocols), the
HTTP status, the error type, the time the request arrived and the time the answer was sent, and for
CodePipeline job calls the job id and whether a continuation token was sent, for PollForJobs the
ids of the jobs it returned, and the process id of the client (the Lambda sandbox that sent the
request, looked up once per connection in /proc), so a job can be traced to the invocation that
polled it. The state machine's
own AWS SDK tasks call the stack directly and are not counted here (they show in the execution
history instead).
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.localstack.lambda_runtime import _QuietServer

_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection", "content-length"}


@dataclass
class Call:
    operation: str  # "CodePipeline.PollForJobs", "StepFunctions.StartExecution", ...
    received: float  # time.time() when the request arrived
    answered: float  # time.time() when the response was sent
    status: int
    error: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    pid: int | None = None  # the client process, None when it could not be found


def _socket_inode(local_port: int, remote_port: int) -> str | None:
    """Inode of the TCP socket bound to local_port and connected to remote_port (/proc/net/tcp*)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if int(cols[1].rsplit(":", 1)[1], 16) == local_port and int(cols[2].rsplit(":", 1)[1], 16) == remote_port:
                        return cols[9]
        except (OSError, ValueError, IndexError):
            continue
    return None


def client_pid(client_port: int, server_port: int) -> int | None:
    """The process holding the client end of a connection to this machine's server_port."""
    inode = _socket_inode(client_port, server_port)
    if not inode or inode == "0":
        return None
    target = f"socket:[{inode}]"
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        fd_dir = f"/proc/{entry}/fd"
        try:
            for fd in os.listdir(fd_dir):
                try:
                    if os.readlink(f"{fd_dir}/{fd}") == target:
                        return int(entry)
                except OSError:
                    continue
        except OSError:
            continue
    return None


def operation_of(headers: Any, body: bytes) -> tuple[str, dict[str, Any]]:
    target = headers.get("X-Amz-Target")
    info: dict[str, Any] = {}
    if target:
        prefix, _, op = target.rpartition(".")
        service = {"CodePipeline_20150709": "CodePipeline", "AWSStepFunctions": "StepFunctions",
                   "DynamoDB_20120810": "DynamoDB"}.get(prefix, prefix)
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            params = {}
        if service == "CodePipeline" and "jobId" in params:
            info["jobId"] = params["jobId"]
            info["continuation"] = "continuationToken" in params
        if service == "StepFunctions" and op == "StartExecution":
            info["name"] = params.get("name")
        elif service == "StepFunctions" and "executionArn" in params:
            info["executionArn"] = params["executionArn"]
        return f"{service}.{op}", info
    form = parse_qs(body.decode("utf-8", "replace")) if body else {}
    if "Action" in form:
        return f"EC2.{form['Action'][0]}", info
    return "other", info


class CountingProxy:
    """`with CountingProxy(upstream) as p:` -> p.endpoint for AWS_ENDPOINT_URL; p.calls."""

    def __init__(self, upstream: str):
        u = urlsplit(upstream)
        self.upstream_host, self.upstream_port = u.hostname or "127.0.0.1", u.port or 80
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._local = threading.local()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                received = time.time()
                if not hasattr(self, "client_pid"):  # once per connection (one handler per connection)
                    self.client_pid = client_pid(self.client_address[1], self.server.server_address[1])
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                op, info = operation_of(self.headers, body)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                status, rheaders, data = proxy._send(self.command, self.path, body, headers)
                try:
                    self.send_response(status)
                    for k, v in rheaders:
                        if k.lower() not in _HOP:
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the Lambda was killed meanwhile
                    self.close_connection = True
                error = ""
                if status >= 400:
                    error = dict((k.lower(), v) for k, v in rheaders).get("x-amzn-errortype", "")
                    if not error:
                        try:
                            error = str(json.loads(data).get("__type", ""))
                        except Exception:
                            error = "HTTP %d" % status
                    error = error.split(":")[0].rpartition("#")[2]
                elif op == "CodePipeline.PollForJobs":
                    try:
                        info["jobs"] = [j["id"] for j in json.loads(data).get("jobs", [])]
                    except (ValueError, KeyError, TypeError, AttributeError):
                        pass
                with proxy._lock:
                    proxy.calls.append(Call(op, received, time.time(), status, error, info, self.client_pid))

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

        # Quiet about connections reset by a sandbox killed at the function timeout.
        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_port}"

    def _send(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, list[tuple[str, str]], bytes]:
        for attempt in (1, 2):
            conn = getattr(self._local, "conn", None)
            if conn is None:
                conn = self._local.conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=120)
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                return resp.status, resp.getheaders(), resp.read()
            except (http.client.HTTPException, ConnectionError):
                conn.close()
                self._local.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def __enter__(self) -> "CountingProxy":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def snapshot(self) -> list[Call]:
        with self._lock:
            return list(self.calls)
