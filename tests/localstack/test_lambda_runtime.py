"""The Lambda Runtime API emulator and the event router, with a tiny Python runtime client."""

from __future__ import annotations

import json
import os
import stat
import sys
import textwrap
import threading

import pytest

from tests.localstack.helpers import custom_action_type, custom_stage, s3_source_pipeline, wait_until, zip_bytes

# A minimal custom runtime, speaking the Runtime API like the Rust lambda_runtime crate.
RUNTIME = textwrap.dedent(
    """\
    import json, os, sys, time, urllib.request
    api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"
    if os.environ.get("FAIL_INIT"):
        urllib.request.urlopen(urllib.request.Request(api + "/init/error", data=b'{"errorMessage":"bad config","errorType":"InitError"}', method="POST"))
        sys.exit(1)
    print("cold start", os.environ["AWS_LAMBDA_FUNCTION_NAME"], os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], flush=True)
    while True:
        with urllib.request.urlopen(api + "/invocation/next") as r:
            rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
            deadline = int(r.headers["Lambda-Runtime-Deadline-Ms"])
            arn = r.headers["Lambda-Runtime-Invoked-Function-Arn"]
            event = json.loads(r.read())
        print("event", json.dumps(event), flush=True)
        if event.get("crash"):
            os._exit(3)
        if event.get("sleep"):
            time.sleep(event["sleep"])
        if event.get("fail"):
            body, path = {"errorMessage": "asked to fail", "errorType": "Handled"}, "/error"
        else:
            body, path = {"echo": event, "arn": arn, "deadline": deadline, "endpoint": os.environ.get("AWS_ENDPOINT_URL"), "extra": os.environ.get("EXTRA")}, "/response"
        urllib.request.urlopen(urllib.request.Request(api + "/invocation/" + rid + path, data=json.dumps(body).encode(), method="POST"))
    """
)


@pytest.fixture
def runtime_binary(tmp_path):
    path = tmp_path / "bootstrap"
    path.write_text(f"#!{sys.executable}\n" + RUNTIME)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_binary_under_the_runtime_api(stack, unique, runtime_binary):
    fn = stack.lambda_function(f"echo-{unique}", binary=runtime_binary, env={"EXTRA": "yes"}, timeout=1.5)
    try:
        (ok,) = fn.invoke({"hello": "world"})
        assert ok.done.wait(10) and ok.status == "Succeeded", ok.error
        assert ok.result["echo"] == {"hello": "world"}
        assert ok.result["arn"] == f"arn:aws:lambda:us-east-1:123456789012:function:echo-{unique}"
        assert ok.result["endpoint"] == stack.endpoint and ok.result["extra"] == "yes"
        (failed,) = fn.invoke({"fail": True})
        assert failed.done.wait(10) and failed.status == "Failed" and failed.error["errorType"] == "Handled"
        (crashed,) = fn.invoke({"crash": True})
        assert crashed.done.wait(10) and crashed.status == "Failed" and crashed.error["errorType"] == "Runtime.ExitError"
        (slow,) = fn.invoke({"sleep": 5})
        assert slow.done.wait(10) and slow.status == "TimedOut"
        (after,) = fn.invoke({"again": 1})  # a fresh sandbox took over
        assert after.done.wait(10) and after.status == "Succeeded"
        # Each invocation names the sandbox process that ran it: the same one until it is killed.
        assert ok.pid == failed.pid == crashed.pid and len({crashed.pid, slow.pid, after.pid}) == 3
        logs = fn.logs()
        assert logs.count("cold start") >= 3 and f"cold start echo-{unique} 128" in logs
        assert 'event {"hello": "world"}' in logs
        assert os.path.exists(os.path.join(stack.work_dir, f"lambda-echo-{unique}.log"))
    finally:
        fn.stop()


def test_init_error_is_recorded(stack, unique, runtime_binary):
    fn = stack.lambda_function(f"init-{unique}", binary=runtime_binary, env={"FAIL_INIT": "1"})
    try:
        wait_until(lambda: "init error" in fn.logs(), 10, what="init error")
    finally:
        fn.stop()


def test_copies_and_concurrency(stack, unique, runtime_binary):
    fn = stack.lambda_function(f"dup-{unique}", binary=runtime_binary, copies=5, concurrency=2)
    try:
        invs = fn.invoke({"n": 1})
        assert len(invs) == 5
        fn.wait_idle(15)
        assert [i.status for i in invs] == ["Succeeded"] * 5
        assert len({i.request_id for i in invs}) == 5
    finally:
        fn.stop()


def test_callable_target_and_retries(stack, unique):
    calls = []

    def handler(event):
        calls.append(event)
        if len(calls) == 1:
            raise RuntimeError("first attempt fails")
        return {"ok": True}

    fn = stack.lambda_function(f"py-{unique}", handler=handler, retries=2)
    try:
        fn.invoke({"x": 1})
        invs = fn.wait_for(lambda invs: any(i.status == "Succeeded" for i in invs), 10)
        assert [i.status for i in invs] == ["Failed", "Succeeded"] and [i.attempt for i in invs] == [1, 2]
        assert calls == [{"x": 1}, {"x": 1}]
    finally:
        fn.stop()


def test_router_delivers_started_events_schedules_and_can_lose_events(stack, unique, runtime_binary):
    provider = f"Route{unique}"
    custom_action_type(stack, provider)
    poller = stack.lambda_function(f"poller-{unique}", binary=runtime_binary)
    seen = []
    pattern = {
        "source": ["aws.codepipeline"],
        "detail-type": ["CodePipeline Action Execution State Change"],
        "detail": {"state": ["STARTED"], "type": {"owner": ["Custom"], "provider": [provider], "category": ["Build"]}},
    }
    stack.router.add_rule(f"started-{unique}", pattern, poller, seen.append)
    sweep = stack.router.add_schedule(f"sweep-{unique}", 0.3, poller)
    try:
        s3 = stack.client("s3")
        s3.create_bucket(Bucket=f"src-{unique}")
        s3.put_object(Bucket=f"src-{unique}", Key="s.zip", Body=zip_bytes({"a": "b"}))
        stack.router.lose_next({"detail": {"type": {"provider": [provider]}, "state": ["STARTED"]}}, count=1)
        pipeline = s3_source_pipeline(stack, f"p-{unique}", f"src-{unique}", "s.zip", [custom_stage("Build", "B", provider, ["SourceOutput"], [])])
        wait_until(lambda: len(stack.router.lost) and any(e["detail"].get("pipeline") == pipeline["name"] for e in stack.router.lost), 10, what="lost event")
        stack.client("codepipeline").start_pipeline_execution(name=pipeline["name"])
        wait_until(lambda: seen, 10, what="STARTED delivered")
        assert len(seen) == 1 and seen[0]["detail"]["pipeline"] == pipeline["name"]
        invs = poller.wait_for(
            lambda invs: any(i.status == "Succeeded" and i.event.get("detail-type") == "CodePipeline Action Execution State Change" for i in invs)
            and sum(1 for i in invs if i.event.get("detail-type") == "Scheduled Event") >= 2,
            10,
        )
        started = next(i for i in invs if i.event.get("detail-type") == "CodePipeline Action Execution State Change")
        assert started.result["echo"] == seen[0]
        tick = next(i for i in invs if i.event.get("detail-type") == "Scheduled Event").event
        assert tick["source"] == "aws.events" and tick["detail"] == {} and tick["resources"] == [sweep.arn]
        fired = stack.router.fire(f"sweep-{unique}")
        assert fired["resources"] == [sweep.arn]
    finally:
        stack.router.remove_rule(f"started-{unique}")
        stack.router.remove_rule(f"sweep-{unique}")
        poller.stop()


def test_injected_failures_fail_the_next_invocations_and_their_retries(stack, unique, runtime_binary):
    fn = stack.lambda_function(f"flaky-{unique}", binary=runtime_binary, retries=2)
    try:
        fn.fail_next(3)
        fn.invoke({"n": 1})
        invs = fn.wait_for(lambda invs: len(invs) == 3 and all(i.done.is_set() for i in invs), 10)
        assert [(i.attempt, i.status) for i in invs] == [(1, "Failed"), (2, "Failed"), (3, "Failed")]
        assert invs[0].error["errorType"] == "Injected"
        (ok,) = fn.invoke({"n": 2})
        assert ok.done.wait(10) and ok.status == "Succeeded", ok.error
    finally:
        fn.stop()
