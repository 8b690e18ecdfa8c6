"""End to end: API throttling never fails or loses a job, and never starts a build twice. The
local stack answers the next calls of each operation with ThrottlingException; the functions'
SDK clients retry them (standard retry mode: 4 attempts, backoff with jitter), so no invocation
fails and Lambda retries nothing."""

from __future__ import annotations

BUILD = {"Command": "mkdir -p dist && echo built > dist/out.txt", "OutputArtifactPath": "dist"}
# Three throttles each: more than the SDK's default three attempts would absorb, so the build
# succeeds only with the functions' own retry configuration.
THROTTLES = {"PollForJobs": 3, "AcknowledgeJob": 3, "StartExecution": 3, "DescribeExecution": 3,
             "PutJobSuccessResult": 3}


def test_throttled_calls_are_retried_and_the_build_runs_once(e2e):
    functions = (e2e.dep.poller, e2e.dep.completion)
    before = {fn.name: len(fn.invocations) for fn in functions}
    e2e.stack.throttle(**THROTTLES)
    try:
        p = e2e.pipeline(BUILD)
        # Only GetPipelineState from here on, which is not throttled: every throttle left is
        # for the product's own calls.
        action = e2e.wait_final(p, timeout=120)
    finally:
        state = e2e.stack.throttle(**{op: 0 for op in THROTTLES})
    assert action["status"] == "Succeeded", action
    for op, count in THROTTLES.items():
        assert state["throttled"].get(op, 0) >= count, (op, state)
    # Every invocation of the functions succeeded at its first attempt: the SDK absorbed the
    # throttles, not Lambda's retries of a failed invocation.
    for fn in functions:
        retried = [i for i in fn.invocations[before[fn.name]:] if i.attempt > 1]
        assert not retried, [(i.attempt, i.status, i.error) for i in retried]
    assert len(e2e.executions(p)) == 1
    assert e2e.output_zip(p).read("dist/out.txt") == b"built\n"
    e2e.assert_nothing_running(p)
