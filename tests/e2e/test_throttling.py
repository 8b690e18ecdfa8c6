"""End to end: API throttling never fails or loses a job, and never starts a build twice. The
local stack answers the next calls of each operation with ThrottlingException; the functions'
SDK clients retry them (adaptive retry mode, backoff with jitter)."""

from __future__ import annotations

BUILD = {"Command": "mkdir -p dist && echo built > dist/out.txt", "OutputArtifactPath": "dist"}
THROTTLES = {"PollForJobs": 2, "AcknowledgeJob": 2, "StartExecution": 2, "DescribeExecution": 2,
             "PutJobSuccessResult": 2}


def test_throttled_calls_are_retried_and_the_build_runs_once(e2e):
    e2e.stack.throttle(**THROTTLES)
    try:
        p = e2e.pipeline(BUILD)
        # Only GetPipelineState from here on, which is not throttled: every throttle left is
        # for the product's own calls.
        action = e2e.wait_final(p, timeout=120)
    finally:
        state = e2e.stack.throttle(**{op: 0 for op in THROTTLES})
    assert action["status"] == "Succeeded", action
    assert state["throttled"] == {op: 2 for op in THROTTLES} | state["throttled"], state
    for op, count in THROTTLES.items():
        assert state["throttled"].get(op) == count, (op, state)
    assert len(e2e.executions(p)) == 1, "a throttled StartExecution started the build twice"
    assert e2e.output_zip(p).read("dist/out.txt") == b"built\n"
    e2e.assert_nothing_running(p)
