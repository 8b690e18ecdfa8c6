"""Launcher: moto server mode, pinned moto 5.2.5, with the project's extensions.

    python -m tests.localstack.server --port 5000 [--host 127.0.0.1]

Prints `LOCALSTACK READY http://HOST:PORT` on stdout when it accepts requests, and serves
until SIGINT/SIGTERM. Besides the AWS APIs it serves a small test API under /_ec2build/
(see README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import Any, Callable, Iterable

MOTO_VERSION = "5.2.5"


def _json(start_response: Callable, status: str, body: Any) -> Iterable[bytes]:
    data = json.dumps(body, default=str).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


# Throttling on demand: operation name (the X-Amz-Target's last part, e.g. "PollForJobs") →
# how many of its next calls are answered ThrottlingException; and how many were.
THROTTLE: dict[str, int] = {}
THROTTLED: dict[str, int] = {}


def _throttled(environ: dict, start_response: Callable) -> Iterable[bytes] | None:
    """A ThrottlingException, as awsJson services send it, when the operation is to be throttled."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    operation = target.rsplit(".", 1)[-1]
    if not operation or THROTTLE.get(operation, 0) <= 0:
        return None
    THROTTLE[operation] -= 1
    THROTTLED[operation] = THROTTLED.get(operation, 0) + 1
    data = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()
    start_response("400 Bad Request", [("Content-Type", "application/x-amz-json-1.1"),
                                       ("x-amzn-ErrorType", "ThrottlingException"),
                                       ("Content-Length", str(len(data)))])
    return [data]


def _metadata(environ: dict, method: str, rest: str, start_response: Callable) -> Iterable[bytes]:
    """/_ec2build/imds/<instance id>/<IMDS path>: that emulated instance's metadata service."""
    from .ext import ec2_spot

    instance_id, _, imds_path = rest.partition("/")
    headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
    status, text = ec2_spot.metadata(method, instance_id, imds_path, headers)
    data = text.encode()
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]


class TestApi:
    """WSGI middleware: /_ec2build/* here, everything else to moto."""

    def __init__(self, app: Callable):
        self.app = app

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if not path.startswith("/_ec2build/"):
            throttled = _throttled(environ, start_response)
            if throttled is not None:
                return throttled
            return self.app(environ, start_response)
        from urllib.parse import parse_qs

        from .ext import ssm
        from .ext.events import BUS

        method = environ["REQUEST_METHOD"]
        if path.startswith("/_ec2build/imds/"):
            return _metadata(environ, method, path[len("/_ec2build/imds/"):], start_response)
        query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        body: Any = None
        if method in ("POST", "PUT"):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            raw = environ["wsgi.input"].read(length) if length else b""
            body = json.loads(raw or b"{}")
        if path == "/_ec2build/health":
            return _json(start_response, "200 OK", {"ok": True, "moto": MOTO_VERSION})
        if path == "/_ec2build/events" and method == "GET":
            after = int(query.get("after", 0))
            wait = min(float(query.get("wait", 0)), 30.0)
            events, last = BUS.read(after, wait)
            return _json(start_response, "200 OK", {"events": events, "last": last})
        if path == "/_ec2build/agent":
            if method == "PUT":
                if "default" in body:
                    ssm.AGENT_CONFIG["default"] = body["default"]
                for image_id, mode in (body.get("images") or {}).items():
                    if mode is None:
                        ssm.AGENT_CONFIG["images"].pop(image_id, None)
                    else:
                        ssm.AGENT_CONFIG["images"][image_id] = mode
            return _json(start_response, "200 OK", {**ssm.AGENT_CONFIG, "work_dir": _work_dir()})
        if path == "/_ec2build/throttle":
            if method == "PUT":
                for operation, count in body.items():
                    THROTTLE[operation] = int(count)
            return _json(start_response, "200 OK", {"pending": THROTTLE, "throttled": THROTTLED})
        if path == "/_ec2build/shutdown":
            from .ext import os_shutdown

            if method == "POST":
                return _json(start_response, "200 OK", os_shutdown.request(body))
            return _json(start_response, "200 OK", {"requests": os_shutdown.requests(query.get("instance"))})
        if path == "/_ec2build/spot-interrupt" and method == "POST":
            from .ext import ec2_spot

            try:
                notice = ec2_spot.interrupt(str(body.get("InstanceId") or ""), float(body.get("NoticeSeconds", 120)))
            except ValueError as e:
                return _json(start_response, "400 Bad Request", {"message": str(e)})
            return _json(start_response, "200 OK", notice)
        if path == "/_ec2build/jobs" and method == "GET":
            from .ext import codepipeline

            jobs = codepipeline.job_listing()
            if "pipeline" in query:
                jobs = [j for j in jobs if j["pipelineName"] == query["pipeline"]]
            return _json(start_response, "200 OK", {"jobs": jobs})
        if path == "/_ec2build/agent/invocations" and method == "GET":
            out = []
            for instance_id, invs in ssm.RUNNING.items():
                for inv in invs:
                    out.append(
                        {
                            "InstanceId": instance_id,
                            "CommandId": inv.command.command_id,
                            "Status": inv.status,
                            "Running": inv.proc is not None,
                        }
                    )
            return _json(start_response, "200 OK", {"invocations": out})
        return _json(start_response, "404 Not Found", {"message": f"no test API at {method} {path}"})


def _work_dir() -> str:
    from .ext import agent

    return agent.WORK_ROOT


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("MOTO_PORT", 5000)))
    parser.add_argument("--work-dir", help="root of the emulated instances' work folders")
    args = parser.parse_args(argv)

    # aws-sdk tasks of Step Functions and the local agent call back on this port.
    os.environ["MOTO_PORT"] = str(args.port)
    if args.work_dir:
        os.environ["EC2BUILD_LOCAL_WORK_DIR"] = args.work_dir

    import moto

    if moto.__version__ != MOTO_VERSION:
        sys.exit(f"tests.localstack needs moto {MOTO_VERSION}, found {moto.__version__}")

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    from .ext import apply_all

    apply_all()

    app = TestApi(DomainDispatcherApplication(create_backend_app))
    server = make_server(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    os.environ["MOTO_PORT"] = str(server.server_port)  # --port 0: the port actually bound

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    print(f"LOCALSTACK READY http://{args.host}:{server.server_port} work_dir={_work_dir()}", flush=True)
    try:
        server.serve_forever()
    finally:
        _shutdown()


def _shutdown() -> None:
    """Kill every script the local agent still runs."""
    try:
        from .ext import ssm

        for invs in ssm.RUNNING.values():
            for inv in invs:
                inv.stop("terminated")
    except Exception:
        pass


if __name__ == "__main__":
    main()
