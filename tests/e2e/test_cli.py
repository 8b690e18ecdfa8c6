"""End to end: the `ec2-build` operator CLI (the real binary) against the deployed product in the
local stack. The CLI finds the deployment as on AWS, by the stack's outputs (DescribeStacks);
every subcommand is run on real builds and checked against what the services say."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest

from tests.deploy import REPO, deploy
from tests.e2e.conftest import AGENT_POLLING, E2E
from tests.localstack.helpers import wait_until

LONG_BUILD = {"Command": "echo long build started\nsleep 300"}


def cli(e2e: E2E, *args: str, stack: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run the ec2-build binary against the local stack, for deployment `stack` (default: e2e's)."""
    binary = os.path.join(os.environ.get("LAMBDA_BIN_DIR") or os.path.join(REPO, "target", "debug"), "ec2-build")
    env = e2e.stack.env(EC2_BUILD_STACK=stack or e2e.dep.name)
    return subprocess.run([binary, *args], env=env, capture_output=True, text=True, timeout=timeout)


def cli_json(e2e: E2E, *args: str, stack: str | None = None, expect: int = 0) -> dict:
    done = cli(e2e, "--json", *args, stack=stack)
    assert done.returncode == expect, (done.returncode, done.stdout, done.stderr)
    return json.loads(done.stdout)


def test_status_shows_a_running_build_then_its_result(e2e):
    p = e2e.pipeline(LONG_BUILD)
    d, instance_id = e2e.building(p)
    status = cli_json(e2e, "status")
    (mine,) = [r for r in status["running"] if r["pipeline"] == p]
    assert mine["job_id"] == d["name"] and mine["execution_arn"] == d["executionArn"]
    assert (mine["stage"], mine["action"]) == ("Build", "EC2Build")
    assert mine["current_stage"] == "build" and mine["current_state"] == "RunBuild"
    assert (mine["instance_id"], mine["market"], mine["pool"]) == (instance_id, "on-demand", "cold")
    human = cli(e2e, "status")
    assert human.returncode == 0, human.stderr
    header, *rows = human.stdout.split("Recently finished")[0].splitlines()[1:]
    assert header.split("  ")[0].startswith("PIPELINE / STAGE / ACTION")
    (row,) = [r for r in rows if p in r]
    assert instance_id in row and "build (RunBuild)" in row and "\x1b[" not in row, "no colour outside a terminal"
    # Columns line up: every row's instance starts where the header's INSTANCE does.
    assert row.index(instance_id) == header.index("INSTANCE")

    e2e.sfn.stop_execution(executionArn=d["executionArn"], error="Stopped", cause="test over")
    e2e.wait_final(p)
    (done,) = wait_until(lambda: [b for b in cli_json(e2e, "status")["finished"] if b["pipeline"] == p], 10,
                         what="the build among the finished ones")
    assert done["status"] == "ABORTED" and done["error"] == "Stopped"
    e2e.assert_nothing_running(p)


def test_show_gives_the_timeline_durations_and_message_of_a_finished_build(e2e):
    p = e2e.pipeline({"Command": "echo built > out.txt", "OutputArtifactPath": "out.txt"})
    assert e2e.wait_final(p)["status"] == "Succeeded"
    d = e2e.execution(p)
    by_pipeline = cli_json(e2e, "show", p)
    assert cli_json(e2e, "show", d["name"])["build"] == by_pipeline["build"]
    assert cli_json(e2e, "show", d["executionArn"])["build"]["job_id"] == d["name"]
    t, durations = by_pipeline["timeline"], by_pipeline["durations"]
    moments = [t[k] for k in ("queued_ms", "started_ms", "acquired_ms", "agent_online_ms", "command_running_ms",
                              "uploaded_ms", "finished_ms")]
    assert all(moments) and moments == sorted(moments), t
    assert t["instance_id"] == json.loads(d["output"])["InstanceId"]
    assert by_pipeline["result"] == "Succeeded"
    assert all(durations[k] is not None and durations[k] >= 0 for k in durations), durations
    assert durations["upload"] > 0, "the document reported its upload time"
    assert by_pipeline["message"].startswith("Build succeeded on i-")
    assert by_pipeline["console_url"].endswith(d["executionArn"])
    assert by_pipeline["log"]["group"] == e2e.dep.values["BuildLogGroup"]
    human = cli(e2e, "show", p)
    assert human.returncode == 0, human.stderr
    for line in ("instance acquired", "agent online", "uploaded (build reported)", "Durations  queue "):
        assert line in human.stdout, human.stdout
    # The completion function wrote the same durations as build metrics (EMF on its stdout).
    def emf(name: str) -> list[dict]:
        docs = [json.loads(line) for line in e2e.dep.completion.logs().splitlines() if line.startswith('{"_aws"')]
        return [d for d in docs if name in d]
    totals = wait_until(lambda: [v for d in emf("BuildTotalTime") for v in d["BuildTotalTime"]], 10, what="build metrics")
    assert any(abs(v - durations["total"]) < 0.01 for v in totals), (totals, durations)
    (doc,) = [d for d in emf("BuildUploadTime") if any(abs(v - durations["upload"]) < 0.001 for v in d["BuildUploadTime"])]
    assert (doc["Stack"], doc["Market"], doc["Pool"]) == (e2e.dep.name, "on-demand", "cold")
    assert any(d["Result"] == "Succeeded" for d in emf("BuildsFinished"))


def test_show_of_a_failed_build_gives_the_failure_message(e2e):
    p = e2e.pipeline({"Command": "echo about to fail\nexit 4"})
    action = e2e.wait_final(p)
    shown = cli_json(e2e, "show", p)
    assert shown["result"] == "BuildFailed"
    assert shown["message"] == action["errorDetails"]["message"]
    assert shown["timeline"]["uploaded_ms"] and shown["durations"]["upload"] is None


def test_logs_print_the_build_output_and_follow_a_running_build(e2e):
    marker = uuid.uuid4().hex
    p = e2e.pipeline({"Command": f"echo first {marker}\nsleep 4\necho second {marker}"})
    d, _ = e2e.building(p)
    follow = cli(e2e, "logs", "--follow", d["name"], timeout=90)
    assert follow.returncode == 0, follow.stderr
    first, second = follow.stdout.index(f"first {marker}"), follow.stdout.index(f"second {marker}")
    assert first < second
    assert e2e.sfn.describe_execution(executionArn=d["executionArn"])["status"] != "RUNNING", "followed to the end"
    again = cli(e2e, "--json", "logs", d["executionArn"])
    lines = [json.loads(line) for line in again.stdout.splitlines()]
    assert [x["message"].strip() for x in lines if marker in x["message"]] == [f"first {marker}", f"second {marker}"]
    e2e.wait_final(p)


def test_cancel_stops_the_build_fails_the_job_with_the_reason_and_leaves_nothing_running(e2e):
    p = e2e.pipeline(LONG_BUILD)
    d, instance_id = e2e.building(p)
    done = cli(e2e, "cancel", d["name"], "--reason", "wrong branch")
    assert done.returncode == 0, done.stderr
    action = e2e.wait_final(p)
    assert action["status"] == "Failed"
    assert "stopped (aborted) (Cancelled): cancelled with ec2-build cancel: wrong branch" in action["errorDetails"]["message"]
    e2e.assert_nothing_running(p)
    assert e2e.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"] \
        in ("shutting-down", "terminated")
    again = cli(e2e, "cancel", d["name"])
    assert again.returncode == 1 and "already ended (ABORTED)" in again.stderr


def test_pools_says_so_when_the_registry_is_empty(e2e):
    done = cli(e2e, "pools")
    assert done.returncode == 0 and "No pool instances in the registry" in done.stdout, done.stdout
    assert cli_json(e2e, "pools") == {"pools": []}


def test_unknown_build_and_unknown_stack_exit_with_their_codes(e2e):
    missing = cli(e2e, "show", "no-such-build")
    assert missing.returncode == 3 and '"no-such-build"' in missing.stderr and "Fix:" in missing.stderr
    no_stack = cli(e2e, "status", stack="no-such-stack")
    assert no_stack.returncode == 4 and "no-such-stack" in no_stack.stderr and "--stack" in no_stack.stderr


@pytest.fixture(scope="module")
def doctor_deployment(e2e):
    """A deployment of its own (another action provider), so breaking it touches no other test."""
    dep = deploy(e2e.stack, name="ec2-build-doctor", substitutions=AGENT_POLLING, schedule=False,
                 parameters={"ActionProvider": "EC2BuildDoctor"})
    return E2E(e2e.stack, dep)


def checks(report: dict, verdict: str) -> list[dict]:
    return [c for c in report["checks"] if c["verdict"] == verdict]


def test_doctor_passes_on_a_healthy_stack_and_finds_a_broken_one(e2e, doctor_deployment):
    doc = doctor_deployment
    healthy = cli_json(e2e, "doctor", stack=doc.dep.name)
    assert healthy["problems"] == 0 and not checks(healthy, "problem"), healthy
    passed = {c["check"] for c in checks(healthy, "ok")}
    assert {"action type", "event rules", "state machine", "SSM document", "route to SSM", "instances"} <= passed
    rules = [c for c in healthy["checks"] if c["check"] == "event rules"]
    assert len(rules) == 4, "poller (event, schedule), completion, keeper"

    sweep = doc.dep.rules["PollerFunction.Sweep"]
    doc.stack.client("events").disable_rule(Name=sweep)
    p = doc.pipeline({"Command": "true"}, image_id="ami-0000000000000dead")
    broken = cli(e2e, "doctor", stack=doc.dep.name)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert f"problem  event rules: {sweep} (invokes ec2-build-doctor-PollerFunction) is DISABLED" in broken.stdout
    assert f"fix: aws events enable-rule --name {sweep}" in broken.stdout
    assert f"problem  images: {p} / Build / EC2Build: image ami-0000000000000dead" in broken.stdout
    report = cli_json(e2e, "doctor", stack=doc.dep.name, expect=1)
    assert report["problems"] == 2, checks(report, "problem")
    doc.wait_final(p)
