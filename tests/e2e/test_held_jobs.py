"""End to end: continuation jobs of running builds are held (acknowledged, recorded in the
held-jobs table, unanswered), so they leave CodePipeline's queue; the build's end is reported on
the held job, by the completion function or, when its event is lost, by the scheduled sweep."""

from __future__ import annotations

import os
import tempfile
import uuid

from tests.localstack.helpers import wait_until

STATUS_CHANGE = "Step Functions Execution Status Change"


def gated_build(e2e):
    """A pipeline whose build runs until the returned file exists (the local agent runs the
    build on this machine)."""
    gate = os.path.join(tempfile.gettempdir(), f"ec2-build-gate-{uuid.uuid4().hex[:8]}")
    p = e2e.pipeline({"Command": f"while [ ! -f {gate} ]; do sleep 0.2; done; echo released"})
    return p, gate


def held_after_a_sweep(e2e, pipeline):
    """Fire the scheduled sweep and wait until the build's continuation job is held; return the
    execution and the held record."""
    d, _ = e2e.building(pipeline)
    e2e.dep.fire_sweep()
    record = wait_until(lambda: e2e.dep.held_jobs().get(d["executionArn"]), 20, interval=0.2,
                        what="the continuation job held")
    jobs = {j["id"]: j for j in e2e.stack.jobs(pipeline)}
    assert jobs[record["job_id"]]["status"] == "InProgress", jobs[record["job_id"]]
    assert not [j for j in jobs.values() if j["status"] == "Queued"], "nothing of the build left queued"
    return d, record


def test_a_held_job_gets_the_result_from_the_completion_function_without_a_poll(e2e):
    p, gate = gated_build(e2e)
    d, record = held_after_a_sweep(e2e, p)
    with open(gate, "w"):
        pass
    action = e2e.wait_final(p)
    assert action["status"] == "Succeeded", action
    # The invocation ends after the answer (its build metrics come last): wait for its response.
    mine = wait_until(lambda: [i for i in e2e.dep.completion.invocations
                               if i.event.get("detail", {}).get("executionArn") == d["executionArn"] and i.result],
                      20, interval=0.2, what="the completion function's response")
    assert [i.result["action"] for i in mine] == ["reported-held"], [i.result for i in mine]
    assert mine[0].result["jobs"]["succeeded"] == 1
    jobs = {j["id"]: j for j in e2e.stack.jobs(p)}
    assert jobs[record["job_id"]]["status"] == "Succeeded"
    assert d["executionArn"] not in e2e.dep.held_jobs(), "the record is forgotten"
    e2e.assert_nothing_running(p)
    assert len(e2e.executions(p)) == 1


def test_a_held_job_whose_completion_event_is_lost_is_reported_by_the_next_sweep(e2e):
    p, gate = gated_build(e2e)
    d, record = held_after_a_sweep(e2e, p)
    e2e.stack.router.lose_next({"detail-type": [STATUS_CHANGE], "detail": {"executionArn": [d["executionArn"]]}})
    with open(gate, "w"):
        pass
    wait_until(lambda: e2e.sfn.describe_execution(executionArn=d["executionArn"])["status"] == "SUCCEEDED",
               30, interval=0.2, what="execution succeeded")
    wait_until(lambda: any(ev["detail"].get("executionArn") == d["executionArn"] for ev in e2e.stack.router.lost),
               10, what="the SUCCEEDED event lost")
    assert e2e.action(p)["status"] == "InProgress"
    e2e.dep.fire_sweep()
    action = e2e.wait_final(p)
    assert action["status"] == "Succeeded", action
    jobs = {j["id"]: j for j in e2e.stack.jobs(p)}
    assert jobs[record["job_id"]]["status"] == "Succeeded", "answered on the held job, not a new one"
    assert d["executionArn"] not in e2e.dep.held_jobs()
    e2e.assert_nothing_running(p)
    assert len(e2e.executions(p)) == 1
