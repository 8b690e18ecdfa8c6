"""End to end: warm pools. A second deployment of the product (its own action provider and stack
name, so its poller and keeper see only its own jobs and instances) declares five pools through
the stack parameter Pools; the keeper fills them through the real preparation workflow, builds
claim from them through the real build workflow, and the registry is read back from DynamoDB.

The emulated agent comes online 2 s after a first boot and 1 s after a start from stopped.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from tests.deploy import deploy
from tests.e2e.conftest import AGENT_POLLING, E2E
from tests.localstack.helpers import wait_until

FIRST_BOOT_SECONDS = 2
START_SECONDS = 1
PREPARATION_POLLING = {"AgentPollSeconds": "1", "AgentPollAttempts": "20", "WarmUpPollSeconds": "1",
                       "WarmUpPollAttempts": "30"}
WARM_UP_MARKER = "warm-up-done"
BURST_SIZE = 5


def pools_parameter(image: str, warm_up: str) -> str:
    common = {"ImageId": image, "InstanceTypes": ["t3.large"]}
    return json.dumps([
        {"Name": "stopped", **common, "Size": 1, "Mode": "stopped", "WarmUpDocument": warm_up},
        {"Name": "running", **common, "Size": 1, "Mode": "running"},
        {"Name": "reused", **common, "Size": 1, "Mode": "stopped", "Reuse": "always"},
        {"Name": "empty", **common, "Size": 0},
        {"Name": "burst", **common, "Size": BURST_SIZE, "Mode": "running"},
    ])


@pytest.fixture(scope="module")
def pools(stack) -> E2E:
    from tests.localstack.helpers import amis

    linux, _ = amis(stack)
    warm_up = f"ec2-build-warm-up-{uuid.uuid4().hex[:6]}"
    stack.client("ssm").create_document(Name=warm_up, DocumentType="Command", DocumentFormat="JSON", Content=json.dumps({
        "schemaVersion": "2.2", "description": "pool warm-up (test)",
        "mainSteps": [{"action": "aws:runShellScript", "name": "WarmUp",
                       "inputs": {"runCommand": [f'date > "$HOME/{WARM_UP_MARKER}"']}}],
    }))
    stack.set_agent(images={linux: f"delay={FIRST_BOOT_SECONDS},start={START_SECONDS}"})
    try:
        dep = deploy(stack, name="ec2-build-pools", substitutions=AGENT_POLLING, schedule=False,
                     prepare_substitutions=PREPARATION_POLLING,
                     parameters={"ActionProvider": "EC2BuildPools", "Pools": pools_parameter(linux, warm_up)})
        yield E2E(stack, dep)
    finally:
        stack.set_agent(images={linux: None})


# ---------------------------------------------------------------------- helpers
def ready(e: E2E, pool: str) -> list[dict[str, Any]]:
    return [i for i in e.dep.pool_registry(pool) if i["State"] == "ready"]


def fill(e: E2E, timeout: float = 90) -> None:
    """One keeper run, then wait until no preparation runs and every pool is at its size."""
    run = e.dep.keep()
    assert not [p for p in run["pools"] if p["failures"]], run["pools"]
    wait_until(lambda: not e.dep.preparations("RUNNING"), timeout, interval=0.5, what="preparations finished")
    failed = e.dep.preparations("FAILED")
    assert not failed, [e.sfn.describe_execution(executionArn=x["executionArn"]).get("cause") for x in failed]
    sizes = {"stopped": 1, "running": 1, "reused": 1, "empty": 0, "burst": BURST_SIZE}
    got = {name: len(ready(e, name)) for name in sizes}
    assert got == sizes, got


def instance(e: E2E, instance_id: str) -> dict[str, Any]:
    return e.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


def transitions(e: E2E, execution_arn: str) -> list[str]:
    events = e.sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
    return [ev["stateEnteredEventDetails"]["name"] for ev in events if "stateEnteredEventDetails" in ev]


def build(e: E2E, pool: str, command: str = "echo built", **extra: str) -> tuple[str, dict[str, Any]]:
    p = e.pipeline({"Pool": pool, "Command": command, **extra})
    final = e.wait_final(p, 120)
    assert final["status"] == "Succeeded", final.get("errorDetails", {}).get("message")
    return p, e.execution(p)


def pool_tags(e: E2E, instance_id: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in instance(e, instance_id).get("Tags", [])}


# ---------------------------------------------------------------------- tests
def test_a_build_from_a_stopped_pool_starts_builds_releases_and_is_replaced_by_a_stopped_instance(pools):
    e = pools
    fill(e)
    (member,) = ready(e, "stopped")
    warm = member["InstanceId"]
    assert instance(e, warm)["State"]["Name"] == "stopped"
    assert pool_tags(e, warm)["ec2-build:pool"] == "stopped"
    assert "ec2-build:execution-arn" not in pool_tags(e, warm)

    p, d = build(e, "stopped", f'mkdir -p dist && cp "$HOME/{WARM_UP_MARKER}" dist/', OutputArtifactPath="dist")
    out = json.loads(d["output"])
    assert out["InstanceId"] == warm, "the build ran on the pool's instance"
    assert f"dist/{WARM_UP_MARKER}" in e.output_zip(p).namelist(), "the warm-up ran before the build"
    names = transitions(e, d["executionArn"])
    assert names[:8] == ["Prepare", "ImageFromParameter?", "FindReadyInstance", "PoolHasReady?", "ClaimInstance",
                         "PoolInstanceStopped?", "StartPoolInstance", "WaitForAgent"], names
    assert names[-5:] == ["Release?", "ForgetPoolInstance", "Release", "Outcome?", "Succeeded"], names
    assert "Launch" not in names
    # Released: terminated (reuse never) and out of the registry.
    assert instance(e, warm)["State"]["Name"] in ("shutting-down", "terminated")
    assert e.dep.pool_registry("stopped") == []
    # The keeper prepares a replacement, stopped and ready.
    fill(e)
    (replacement,) = ready(e, "stopped")
    assert replacement["InstanceId"] != warm
    assert instance(e, replacement["InstanceId"])["State"]["Name"] == "stopped"


def test_a_build_from_a_running_pool_uses_the_instance_at_once(pools):
    e = pools
    fill(e)
    (member,) = ready(e, "running")
    assert instance(e, member["InstanceId"])["State"]["Name"] == "running"
    p, d = build(e, "running")
    assert json.loads(d["output"])["InstanceId"] == member["InstanceId"]
    names = transitions(e, d["executionArn"])
    assert "StartPoolInstance" not in names and "WaitForAgent" not in names, names
    assert names == ["Prepare", "ImageFromParameter?", "FindReadyInstance", "PoolHasReady?", "ClaimInstance",
                     "PoolInstanceStopped?", "CheckAgent", "AgentOnline?", "RunBuild", "Release?",
                     "ForgetPoolInstance", "Release", "Outcome?", "Succeeded"]
    assert len(names) <= 16
    assert instance(e, member["InstanceId"])["State"]["Name"] in ("shutting-down", "terminated")


def test_a_reuse_always_pool_returns_its_instance_and_the_next_build_finds_the_cache(pools):
    e = pools
    fill(e)
    (member,) = ready(e, "reused")
    command = ('mkdir -p dist\n'
               'if [ -f "$EC2_BUILD_CACHE/left-by-first" ]; then cp "$EC2_BUILD_CACHE/left-by-first" dist/found.txt; fi\n'
               'echo "$SSM_JobId" > "$EC2_BUILD_CACHE/left-by-first"\n'
               'echo done > dist/done.txt')
    first, d1 = build(e, "reused", command, OutputArtifactPath="dist")
    assert "dist/found.txt" not in e.output_zip(first).namelist(), "the first build found an empty cache"
    names = transitions(e, d1["executionArn"])
    assert names[-5:] == ["RunBuild", "Release?", "StopPoolInstance", "ReturnToPool", "Outcome?"] or \
        names[-6:-1] == ["RunBuild", "Release?", "StopPoolInstance", "ReturnToPool", "Outcome?"], names
    assert len(names) <= 16, names
    (back,) = e.dep.pool_registry("reused")
    assert (back["InstanceId"], back["State"], back["Builds"]) == (member["InstanceId"], "ready", "1")
    assert instance(e, member["InstanceId"])["State"]["Name"] == "stopped"

    second, d2 = build(e, "reused", command, OutputArtifactPath="dist")
    assert json.loads(d2["output"])["InstanceId"] == member["InstanceId"]
    found = e.output_zip(second).read("dist/found.txt").decode().strip()
    assert found == d1["name"], "the second build found what the first left in its cache folder"
    (back,) = e.dep.pool_registry("reused")
    assert (back["State"], back["Builds"]) == ("ready", "2")


def test_an_empty_pool_falls_back_to_a_fresh_instance_at_once(pools):
    e = pools
    started = time.monotonic()
    p, d = build(e, "empty")
    names = transitions(e, d["executionArn"])
    assert names[:6] == ["Prepare", "ImageFromParameter?", "FindReadyInstance", "PoolHasReady?", "ColdFallback",
                         "ImageFromParameter?"], names
    assert "Launch" in names and "ClaimInstance" not in names
    (fresh,) = e.instances(p)  # a fresh instance carries the pipeline's tags
    assert fresh["InstanceId"] == json.loads(d["output"])["InstanceId"]
    assert time.monotonic() - started < 60
    assert instance(e, fresh["InstanceId"])["State"]["Name"] in ("shutting-down", "terminated")
    assert e.dep.pool_registry("empty") == []


def test_twenty_builds_at_once_take_the_five_ready_instances_and_launch_fifteen(pools):
    e = pools
    fill(e)
    warm = {m["InstanceId"] for m in ready(e, "burst")}
    assert len(warm) == BURST_SIZE
    pipelines = [e.pipeline({"Pool": "burst", "Command": "echo built"}) for _ in range(20)]
    for p in pipelines:
        final = e.wait_final(p, 300)
        assert final["status"] == "Succeeded", (p, final)
    used = [json.loads(e.execution(p)["output"])["InstanceId"] for p in pipelines]
    assert len(set(used)) == 20, "no instance served two builds"
    from_pool = [i for i in used if i in warm]
    assert sorted(from_pool) == sorted(warm), "each ready instance served exactly one build"
    assert len(used) - len(from_pool) == 15
    # The pool is back at its size after the keeper's runs.
    fill(e)
    assert len(ready(e, "burst")) == BURST_SIZE
    assert not warm & {m["InstanceId"] for m in ready(e, "burst")}


def test_a_pool_instance_whose_execution_was_aborted_is_recycled_by_the_keeper(pools):
    e = pools
    fill(e)
    (member,) = ready(e, "running")
    p = e.pipeline({"Pool": "running", "Command": "echo long build started\nsleep 300"})

    def claimed():
        items = [i for i in e.dep.pool_registry("running") if i["State"] == "claimed"]
        return items[0] if items else None

    item = wait_until(claimed, 60, interval=0.3, what="the pool instance claimed")
    assert item["InstanceId"] == member["InstanceId"]
    e.sfn.stop_execution(executionArn=item["ClaimedBy"], error="Test", cause="aborted by the test")
    wait_until(lambda: e.sfn.describe_execution(executionArn=item["ClaimedBy"])["status"] == "ABORTED", 30)
    # Not the completion function's (the pool instance has no execution tag): the keeper's.
    run = e.dep.keep()
    (report,) = [r for r in run["pools"] if r["pool"] == "running"]
    assert [r[0] for r in report["recycled"]] == [member["InstanceId"]], report
    assert "no longer running" in report["recycled"][0][1]
    assert instance(e, member["InstanceId"])["State"]["Name"] in ("shutting-down", "terminated")
    assert all(i["InstanceId"] != member["InstanceId"] for i in e.dep.pool_registry("running"))
    assert len(report["started"]) == 1, "a replacement is prepared"
    wait_until(lambda: not e.dep.preparations("RUNNING"), 90, interval=0.5, what="replacement prepared")
    assert len(ready(e, "running")) == 1
    e.wait_final(p, 60)



def test_the_cli_lists_each_pools_instances_by_state(pools):
    from tests.e2e.test_cli import cli, cli_json

    fill(pools)
    out = {p["name"]: p for p in cli_json(pools, "pools")["pools"]}
    for name in ("stopped", "running", "reused", "burst"):
        registry = pools.dep.pool_registry(name)
        listed = out[name]
        assert sorted(m["instance_id"] for m in listed["instances"]) == [i["InstanceId"] for i in registry], name
        states: dict[str, int] = {}
        for i in registry:
            states[i["State"]] = states.get(i["State"], 0) + 1
        assert listed["states"] == states, (name, listed["states"], states)
    done = cli(pools, "pools")
    assert done.returncode == 0, done.stderr
    assert "Pool stopped: 1 ready" in done.stdout, done.stdout
    # doctor looks at the pool instances' SSM Agent (the local agent reports a current version).
    doctor = cli(pools, "--json", "doctor")
    checks = {c["check"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert checks["pool agents"]["verdict"] == "ok", checks["pool agents"]


def test_the_cli_status_names_the_pool_of_a_running_pool_build(pools):
    from tests.e2e.test_cli import cli_json

    fill(pools)
    (member,) = ready(pools, "running")
    p = pools.pipeline({"Pool": "running", "Command": "echo pooled build started\nsleep 300"})
    d, _ = wait_until(lambda: (lambda x: (x[0], None) if x else None)(pools.executions(p)), 30, what="execution started")

    def listed():
        rows = [r for r in cli_json(pools, "status")["running"] if r["execution_arn"] == d["executionArn"]]
        return rows[0] if rows and rows[0]["instance_id"] else None

    row = wait_until(listed, 60, interval=1, what="the pool build in ec2-build status")
    assert (row["pool"], row["instance_id"]) == ("running", member["InstanceId"]), row
    pools.sfn.stop_execution(executionArn=d["executionArn"], error="Stopped", cause="test over")
