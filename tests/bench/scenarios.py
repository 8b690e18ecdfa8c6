"""The benchmark's scenarios against the product deployed in the local stack (tests/deploy.py):
pipeline builds (critical-path overhead, state transitions, API calls and Lambda work per build)
and throughput (many jobs queued at once)."""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.localstack import LocalStack
from tests.localstack.helpers import custom_stage, execution_history, s3_source_pipeline, wait_until, zip_bytes

from .proxy import Call, CountingProxy

FUNCTIONS = ("PollerFunction", "CompletionFunction")


def _deploy(stack: LocalStack, bin_dir: str, proxies: dict[str, CountingProxy], env: dict[str, str] | None = None,
            **kwargs: Any) -> Any:
    """The product as tests/deploy.py wires it from the template, with each Lambda's
    AWS_ENDPOINT_URL pointed at its own counting proxy (and `env` added to both functions)."""
    from tests.deploy import deploy

    lambda_env = {lid: {"AWS_ENDPOINT_URL": proxies[lid].endpoint, **(env or {})} for lid in FUNCTIONS}
    return deploy(stack, name="bench", bin_dir=bin_dir, lambda_env=lambda_env, **kwargs)


def _ts(value: Any) -> float:
    return value.timestamp() if hasattr(value, "timestamp") else float(value)


class Environment:
    """One local stack, two counting proxies, the product deployed."""

    def __init__(self, bin_dir: str, work_dir: str | None = None, **deploy_kwargs: Any):
        self.stack = LocalStack(work_dir=work_dir)
        self.stack.start()
        self.proxies = {lid: CountingProxy(self.stack.endpoint).__enter__() for lid in FUNCTIONS}
        try:
            self.dep = _deploy(self.stack, bin_dir, self.proxies, **deploy_kwargs)
        except BaseException:
            self.close()
            raise
        self.cp = self.stack.client("codepipeline")
        self.sfn = self.stack.client("stepfunctions")
        self.ssm = self.stack.client("ssm")
        self.s3 = self.stack.client("s3")
        self.source_bucket = "bench-source-" + uuid.uuid4().hex[:6]
        self.s3.create_bucket(Bucket=self.source_bucket)
        self.s3.put_object(Bucket=self.source_bucket, Key="source.zip", Body=zip_bytes({"README": "bench\n"}))

    def close(self) -> None:
        for p in self.proxies.values():
            p.__exit__(None, None, None)
        self.stack.stop()

    def calls(self) -> dict[str, list[Call]]:
        return {lid: p.snapshot() for lid, p in self.proxies.items()}

    def create_pipeline(self, name: str, command: str, **configuration: str) -> None:
        config = {"ImageId": self.dep.linux_ami, "InstanceType": "t3.large", "Command": command, **configuration}
        stage = custom_stage("Build", "Linux", self.dep.action_type["provider"], ["SourceOutput"], [], config,
                             category=self.dep.action_type["category"])
        s3_source_pipeline(self.stack, name, self.source_bucket, "source.zip", [stage], artifact_bucket=self.dep.artifact_bucket)

    def action_state(self, pipeline: str) -> dict[str, Any]:
        state = self.cp.get_pipeline_state(name=pipeline)
        stage = next(s for s in state["stageStates"] if s["stageName"] == "Build")
        return stage["actionStates"][0].get("latestExecution") or {}

    def history(self, arn: str) -> list[dict[str, Any]]:
        return execution_history(self.sfn, arn)


# ---------------------------------------------------------------- one pipeline build, measured
@dataclass
class Build:
    pipeline: str
    sleep: int
    visible: float  # CreatePipeline returned: the job exists (time.time())
    status: str = ""
    job_id: str = ""
    execution_arn: str = ""
    marks: dict[str, float] = field(default_factory=dict)
    transitions: list[str] = field(default_factory=list)
    calls: dict[str, dict[str, int]] = field(default_factory=dict)  # function -> operation -> count
    reporter: str = ""  # which function sent the final result
    continuation_checks: int = 0
    error: str = ""

    def stage(self, a: str, b: str) -> float | None:
        if a in self.marks and b in self.marks:
            return self.marks[b] - self.marks[a]
        return None

    def started_to_command_without_acquisition(self) -> float | None:
        """Stage b: execution started → command running, minus Launch → agent online."""
        total, acquisition = self.stage("execution_started", "command_start"), self.stage("launch_entered", "agent_online")
        return None if total is None or acquisition is None else total - acquisition


COMMAND = 'echo "BENCH_START $(date +%s.%N)"\nsleep {sleep}\necho "BENCH_END $(date +%s.%N)"'


def start_build(env: Environment, sleep: int) -> Build:
    name = f"bench-{sleep}s-{uuid.uuid4().hex[:6]}"
    env.create_pipeline(name, COMMAND.format(sleep=sleep))
    return Build(name, sleep, time.time())


def finish_build(env: Environment, build: Build, timeout: float) -> Build:
    """Waits for the pipeline action to end, then reads the marks of the critical path."""
    def ended() -> dict[str, Any] | None:
        latest = env.action_state(build.pipeline)
        return latest if latest.get("status") in ("Succeeded", "Failed") else None

    latest = wait_until(ended, timeout, interval=0.2, what=f"{build.pipeline} to finish")
    build.status = latest["status"]
    build.execution_arn = latest.get("externalExecutionId", "")
    build.job_id = build.execution_arn.rsplit(":", 1)[-1]
    if build.status != "Succeeded":
        build.error = str(latest.get("errorDetails") or latest.get("summary"))
    m = build.marks
    m["visible"] = build.visible
    if not build.execution_arn:
        return build
    # Lambda side, from the proxies: StartExecution answered, final PutJobSuccessResult answered.
    calls = env.calls()
    jobs = {build.job_id}
    for lid, cs in calls.items():
        for c in cs:
            if c.operation == "StepFunctions.StartExecution" and c.info.get("name") == build.job_id and c.status == 200:
                m.setdefault("execution_started", c.answered)
    # Continuation jobs of this build: GetJobDetails of each answered job (same pipeline execution).
    pipeline_execution = env.cp.get_job_details(jobId=build.job_id)["jobDetails"]["data"]["pipelineContext"]["pipelineExecutionId"]
    answered = {c.info["jobId"] for cs in calls.values() for c in cs if c.info.get("jobId")}
    for job in answered - jobs:
        try:
            data = env.cp.get_job_details(jobId=job)["jobDetails"]["data"]
        except Exception:
            continue
        if data["pipelineContext"]["pipelineExecutionId"] == pipeline_execution:
            jobs.add(job)
    for lid, cs in calls.items():
        counts: dict[str, int] = {}
        for c in cs:
            mine = c.info.get("jobId") in jobs or c.info.get("name") == build.job_id or c.info.get("executionArn") == build.execution_arn
            if not mine:
                continue
            counts[c.operation] = counts.get(c.operation, 0) + 1
            if c.operation in ("CodePipeline.PutJobSuccessResult", "CodePipeline.PutJobFailureResult") and c.status == 200:
                if not c.info.get("continuation"):
                    m["final_result"] = c.answered
                    build.reporter = lid
                elif c.info.get("jobId") != build.job_id:
                    build.continuation_checks += 1
        build.calls[lid] = counts
    # State machine side, from the execution history.
    history = env.history(build.execution_arn)
    build.transitions = [e["stateEnteredEventDetails"]["name"] for e in history if e["type"].endswith("StateEntered")]
    for e in history:
        t = _ts(e["timestamp"])
        name = (e.get("stateEnteredEventDetails") or e.get("stateExitedEventDetails") or {}).get("name")
        if e["type"] == "ExecutionStarted":
            m["sfn_started"] = t
        elif e["type"].endswith("StateEntered") and name == "Launch":
            m.setdefault("launch_entered", t)
        elif e["type"].endswith("StateExited") and name == "Launch":
            m["launch_exited"] = t
        elif e["type"].endswith("StateExited") and name == "AgentOnline?":
            m["agent_online"] = t
        elif e["type"].endswith("StateEntered") and name == "RunBuild":
            m["runbuild_entered"] = t
        elif e["type"] in ("ExecutionSucceeded", "ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted"):
            m["execution_ended"] = t
    # The build command's own clock, from its output.
    try:
        d = env.sfn.describe_execution(executionArn=build.execution_arn)
        out = json.loads(d.get("output") or "{}")
        inv = env.ssm.get_command_invocation(CommandId=out["CommandId"], InstanceId=out["InstanceId"], PluginName="LinuxBuild")
        for line in inv["StandardOutputContent"].splitlines():
            if line.startswith("BENCH_START "):
                m["command_start"] = float(line.split()[1])
            elif line.startswith("BENCH_END "):
                m["command_end"] = float(line.split()[1])
    except Exception as e:  # noqa: BLE001 - reported in the table
        build.error = build.error or f"command marks unavailable: {e}"
    return build


# ---------------------------------------------------------------- Lambda invocations
def invocation_durations(env: Environment) -> dict[str, list[tuple[str, float]]]:
    """(kind, seconds) of every finished invocation: kind is the trigger and what it did."""
    out: dict[str, list[tuple[str, float]]] = {}
    for lid in FUNCTIONS:
        fn = env.dep.functions[lid]
        rows = []
        for inv in list(fn.invocations):
            if inv.duration is None or inv.status != "Succeeded":
                continue
            r = inv.result or {}
            detail_type = (inv.event or {}).get("detail-type", "")
            if lid == "PollerFunction":
                work = "empty" if not any(r.get(k) for k in ("started", "continued", "succeeded", "failed", "skipped")) else \
                    "+".join(f"{k}{r[k]}" for k in ("started", "continued", "succeeded", "failed", "skipped") if r.get(k))
                kind = ("event" if detail_type != "Scheduled Event" else "sweep") + ":" + work
            else:
                kind = str(r.get("action", "?"))
            rows.append((kind, inv.duration))
        out[lid] = rows
    return out


# ---------------------------------------------------------------- throughput
@dataclass
class Throughput:
    jobs: int
    concurrency: int
    state_machine: str = "parked stand-in"  # or "real": what the started executions run
    queue_seconds: float = 0.0  # creating the pipeline runs (not part of the figure)
    all_started: float | None = None  # s from delivery of the events to the last StartExecution answered
    all_answered: float | None = None  # ... to the last original job answered (continuation token)
    calls_until_answered: dict[str, int] = field(default_factory=dict)
    invocations_until_answered: int = 0
    executions: int = 0
    lost: int = 0
    duplicated: int = 0
    already_exists: int = 0
    invalid_nonce: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # error answers to the poller, whole burst
    execution_status: dict[str, int] = field(default_factory=dict)  # at the end of the run
    poller_timeouts: int = 0  # invocations over the function timeout (sandbox killed with its jobs in flight)
    jobs_polled_by_killed: int = 0  # jobs (original or continuation) returned to an invocation that was then killed
    lost_to_timeouts: int = 0  # lost original jobs among those
    lost_by_stage: dict[str, int] = field(default_factory=dict)  # lost original jobs by what their status says
    started_unanswered: int = 0  # original jobs with an execution but never answered
    continuations_unanswered: int = 0  # continuation jobs polled and left Dispatched/InProgress
    executions_without_continuation: int = 0  # executions with no queued continuation job carrying their ARN
    # The whole burst: every one of the N invocations (and Lambda's retries of failed ones) run to its end.
    burst_limit: float = 0.0  # s from the hand-over the bench waits for that
    burst_finished: float | None = None  # s from the hand-over to the end of the last of them; None: limit reached
    burst_invocations: int = 0  # poller invocations of the burst, retries included
    burst_retries: int = 0
    burst_unfinished: int = 0  # invocations queued or running when the limit was reached (then dropped or let end)
    burst_calls: dict[str, int] = field(default_factory=dict)  # every poller request at the proxy, by operation
    burst_rechecks: int = 0  # continuation jobs answered by the poller (re-checks of running builds)
    burst_holds: int = 0  # continuation jobs the poller held (PutItem answered)
    burst_polls: dict[int, int] = field(default_factory=dict)  # finished invocations by PollForJobs calls (their response)
    run_seconds: float | None = None  # the whole run of this size: deploy, queueing, measure, check
    latency: dict[str, float] = field(default_factory=dict)  # median s per operation at the proxy (the stack's answer time)
    note: str = ""


PARKED_ASL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "parked.asl.json")


def park_state_machine(env: Environment) -> None:
    """Replaces the deployed build state machine's definition with the bench's parked stand-in
    (tests/bench/parked.asl.json: one hour-long Wait, then Succeed). UpdateStateMachine keeps the
    ARN, so the poller's STATE_MACHINE_ARN, its execution names and continuation tokens are the
    same as with the real definition."""
    with open(PARKED_ASL) as f:
        definition = f.read()
    arn = env.dep.state_machine_arn
    env.sfn.update_state_machine(stateMachineArn=arn, definition=definition)
    now = env.sfn.describe_state_machine(stateMachineArn=arn)
    if json.loads(now["definition"]) != json.loads(definition):
        raise RuntimeError(f"{arn}: the stand-in definition did not replace the build workflow")


def throughput(bin_dir: str, jobs: int, concurrency: int, timeout: float, burst_timeout: float, log=print,
               stand_in: bool = True) -> Throughput:
    """`jobs` pipeline runs queued while the STARTED rule is held back, then their `jobs` STARTED
    events delivered to the poller at once.

    What is measured is the poller: PollForJobs, AcknowledgeJob, StartExecution, the answer with
    a continuation token, and the re-checks of already running builds whose continuation jobs the
    later invocations find, first until every original job is answered (within `timeout` s of the
    hand-over), then for the whole burst: every one of the `jobs` invocations, and Lambda's retries
    of failed ones, run to their end (within `burst_timeout` s of the hand-over; past it the queued
    ones are dropped and the row's note says so). The poller is the real release binary, deployed
    from the template and unchanged. With `stand_in` (the default, and what section 4 reports for
    every size) the state machine it starts is the parked stand-in (`park_state_machine`): the
    same ARN, but each execution only waits, so the local stack (one Python process serving every
    API call and running every execution) is not also launching `jobs` instances in moto while it
    answers the poller. Without the stand-in, at 1,000 jobs the stack's EC2 work slowed
    StartExecution to seconds and failed RunInstances, which measured moto, not the poller. The
    state machine's own work per build is measured in sections 1 and 2. `stand_in=False` keeps the
    real definition, with its first agent wait at an hour (a DefinitionSubstitutions value) so that
    executions park in WaitForAgent after launching their instance."""
    t_run = time.monotonic()
    res = Throughput(jobs, concurrency, state_machine="parked stand-in" if stand_in else "real")
    env = Environment(bin_dir, substitutions={"AgentPollSeconds": "3600", "AgentPollMaxSeconds": "3600"},
                      schedule=False, concurrency=concurrency)
    try:
        if stand_in:
            park_state_machine(env)
        router = env.stack.router
        rule = router.rules[env.dep.rules["PollerFunction.ActionStarted"]]
        rule.enabled = False  # hold the STARTED events back while the jobs are queued
        pattern = rule.pattern
        t = time.monotonic()
        name = f"bench-tp-{uuid.uuid4().hex[:6]}"
        env.create_pipeline(name, COMMAND.format(sleep=1))
        for _ in range(jobs - 1):
            env.cp.start_pipeline_execution(name=name)
        events = router.wait_for_event(pattern, timeout=120, count=jobs)
        res.queue_seconds = time.monotonic() - t
        log(f"  {jobs} jobs queued in {res.queue_seconds:.1f}s; delivering {len(events)} STARTED events")
        poller = env.dep.poller
        before = len(poller.invocations)
        t0, t0_mono = time.time(), time.monotonic()
        for ev in events:
            poller.invoke(ev)

        def started_ids() -> set[str]:
            return {c.info["name"] for c in env.proxies["PollerFunction"].snapshot()
                    if c.operation == "StepFunctions.StartExecution" and c.status == 200}

        def originals_answered(ids: set[str]) -> list[Call]:
            return [c for c in env.proxies["PollerFunction"].snapshot()
                    if c.operation == "CodePipeline.PutJobSuccessResult" and c.status == 200 and c.info.get("jobId") in ids]

        def answered_progress() -> str | None:
            ids = started_ids()
            answered = originals_answered(ids)
            return None if len(ids) >= jobs and len(answered) >= jobs else f"{len(ids)} started, {len(answered)} answered"

        left = _wait(answered_progress, t0_mono + timeout, log)
        if left:
            res.note = f"timed out after {timeout:.0f}s with {left}"
        calls = env.proxies["PollerFunction"].snapshot()
        starts = [c for c in calls if c.operation == "StepFunctions.StartExecution" and c.status == 200]
        ids = {c.info["name"] for c in starts}
        answered = originals_answered(ids)
        if starts:
            res.all_started = max(c.answered for c in starts) - t0 if len(ids) >= jobs else None
        if answered and len(answered) >= jobs:
            t_end = max(c.answered for c in answered)
            res.all_answered = t_end - t0
            upto = [c for c in calls if c.received <= t_end]
        else:
            upto = calls
        for c in upto:
            res.calls_until_answered[c.operation] = res.calls_until_answered.get(c.operation, 0) + 1
        by_op: dict[str, list[float]] = {}
        for c in upto:
            by_op.setdefault(c.operation, []).append(c.answered - c.received)
        res.latency = {k: statistics.median(v) for k, v in by_op.items()}
        res.already_exists = sum(1 for c in upto if c.operation == "StepFunctions.StartExecution" and "ExecutionAlreadyExists" in c.error)
        res.invalid_nonce = sum(1 for c in upto if c.operation == "CodePipeline.AcknowledgeJob" and "InvalidNonce" in c.error)
        t_end_mono = t0_mono + (res.all_answered if res.all_answered is not None else time.monotonic() - t0_mono)
        # Invocations that had begun by then (one sweep keeps polling while batches come back full).
        res.invocations_until_answered = sum(
            1 for inv in poller.invocations[before:] if inv.started_at is not None and inv.started_at <= t_end_mono
        )
        # The whole burst, as on AWS: every one of the N events runs an invocation, each handling the
        # continuation jobs it polls, and Lambda retries a failed one (twice); wait for all of them.
        res.burst_limit = burst_timeout

        def burst_progress() -> str | None:
            invs = poller.invocations[before:]
            running = sum(1 for i in invs if i.status == "Running")
            queued = sum(1 for i in invs if i.status == "Queued")
            return f"burst: {len(invs) - running - queued} of {len(invs)} invocations finished" if running or queued else None

        left = _wait(burst_progress, t0_mono + burst_timeout, log)
        if left is None:  # once more, in case a retry was being queued just as its failed attempt ended
            time.sleep(0.5)
            left = _wait(burst_progress, t0_mono + burst_timeout, log)
        # Then stop the poller before checking, so nothing changes underneath.
        router.stop()
        if left:  # drop what is still queued (and any retry); the running ones end by themselves or at the function timeout
            res.burst_unfinished = sum(1 for i in poller.invocations[before:] if not i.done.is_set())
            res.note = (res.note + "; " if res.note else "") + (
                f"whole burst not finished in the {burst_timeout:.0f} s limit ({left}); "
                f"{res.burst_unfinished} invocations unfinished, the queued ones dropped")
            poller.retries = 0
            import queue as _queue

            while True:
                try:
                    poller._queue.get_nowait()
                except _queue.Empty:
                    break
            try:
                wait_until(lambda: not any(i.status == "Running" for i in poller.invocations), poller.timeout + 15, interval=0.5,
                           what="running poller invocations to finish")
            except TimeoutError as e:
                res.note = (res.note + "; " if res.note else "") + str(e)
        poller.stop()
        burst = poller.invocations[before:]
        res.burst_invocations = len(burst)
        res.burst_retries = sum(1 for i in burst if i.attempt > 1)
        if not left:
            res.burst_finished = max(i.ended_at for i in burst) - t0_mono
        for inv in burst:
            if inv.status == "Succeeded" and isinstance(inv.result, dict):
                polls = int(inv.result.get("polls", 0))
                res.burst_polls[polls] = res.burst_polls.get(polls, 0) + 1
        calls = env.proxies["PollerFunction"].snapshot()
        continuation_ids = {j["id"] for j in env.stack.jobs(name) if j["continuationToken"]}
        for c in calls:
            res.burst_calls[c.operation] = res.burst_calls.get(c.operation, 0) + 1
            if c.status >= 400:
                res.errors[f"{c.operation}:{c.error}"] = res.errors.get(f"{c.operation}:{c.error}", 0) + 1
        res.burst_rechecks = len({c.info["jobId"] for c in calls if c.status == 200 and c.info.get("jobId") in continuation_ids
                                  and c.operation in ("CodePipeline.PutJobSuccessResult", "CodePipeline.PutJobFailureResult")})
        res.burst_holds = sum(1 for c in calls if c.status == 200 and c.operation == "DynamoDB.PutItem")
        account(env, res, name, burst)
        res.run_seconds = time.monotonic() - t_run
        return res
    finally:
        env.close()


# ---------------------------------------------------------------- new jobs among running builds
@dataclass
class AmongRunning:
    running: int
    samples: int
    concurrency: int
    after_burst: float | None = None  # job visible -> execution started, first new job right after the burst of starts
    after_burst_queued: int = 0  # continuation jobs still queued (not yet held) when that job became visible
    after_burst_calls: dict[str, int] = field(default_factory=dict)  # the poller's calls for that job's STARTED event
    steady: list[float] = field(default_factory=list)  # the same, once a scheduled sweep has held every build's job
    steady_calls: dict[str, int] = field(default_factory=dict)  # the poller's calls for those samples, summed
    first_sweep: dict[str, int] = field(default_factory=dict)  # calls of the scheduled sweep after the burst
    refresh_sweep: dict[str, int] = field(default_factory=dict)  # calls of a scheduled sweep refreshing every held job
    refresh_sweep_seconds: float | None = None
    refreshed: int = 0  # held jobs that sweep answered with progress
    note: str = ""


def among_running(bin_dir: str, running: int, samples: int, concurrency: int, log=print) -> AmongRunning:
    """`running` builds started at once (parked stand-in, STARTED events delivered as they come),
    then new jobs one at a time: job visible (CreatePipeline of a pipeline whose creation starts a
    run) → its execution started (StartExecution answered at the proxy). The first new job comes
    right after the burst; the others after one scheduled sweep has held every running build's
    continuation job. Then a scheduled sweep with every held job due (HELD_JOB_REFRESH_SECONDS = 0
    in this deployment) measures what refreshing a running build costs."""
    res = AmongRunning(running, samples, concurrency)
    env = Environment(bin_dir, substitutions={"AgentPollSeconds": "3600", "AgentPollMaxSeconds": "3600"},
                      schedule=False, concurrency=concurrency, env={"HELD_JOB_REFRESH_SECONDS": "0"})
    try:
        park_state_machine(env)
        poller, proxy = env.dep.poller, env.proxies["PollerFunction"]

        def counts(since: int) -> dict[str, int]:
            out: dict[str, int] = {}
            for c in proxy.snapshot()[since:]:
                out[c.operation] = out.get(c.operation, 0) + 1
            return out

        def idle() -> None:
            wait_until(lambda: all(i.done.is_set() for i in poller.invocations), 120, interval=0.1, what="poller idle")

        def started(job_id: str) -> float | None:
            for c in proxy.snapshot():
                if c.operation == "StepFunctions.StartExecution" and c.info.get("name") == job_id and c.status == 200:
                    return c.answered
            return None

        def new_job() -> tuple[float, dict[str, int]]:
            name = f"bench-new-{uuid.uuid4().hex[:6]}"
            mark = len(proxy.snapshot())
            env.create_pipeline(name, COMMAND.format(sleep=1))
            visible = time.time()
            (job,) = [j for j in env.stack.jobs(name) if not j["continuationToken"]]
            at = wait_until(lambda: started(job["id"]), 60, interval=0.05, what=f"{name} started")
            idle()
            return at - visible, counts(mark)

        name = f"bench-running-{uuid.uuid4().hex[:6]}"
        env.create_pipeline(name, COMMAND.format(sleep=1))
        for _ in range(running - 1):
            env.cp.start_pipeline_execution(name=name)
        wait_until(lambda: sum(1 for c in proxy.snapshot() if c.operation == "StepFunctions.StartExecution"
                               and c.status == 200) >= running, 300, interval=0.25, what=f"{running} builds started")
        idle()
        res.after_burst_queued = sum(1 for j in env.stack.jobs(name) if j["continuationToken"] and j["status"] == "Queued")
        res.after_burst, res.after_burst_calls = new_job()
        log(f"  {running} running: first new job after the burst started in {res.after_burst:.3f} s "
            f"({res.after_burst_queued} continuation jobs queued ahead)")
        mark = len(proxy.snapshot())
        env.dep.fire_sweep()
        time.sleep(0.2)
        idle()
        res.first_sweep = counts(mark)
        for _ in range(samples):
            took, calls = new_job()
            res.steady.append(took)
            for k, v in calls.items():
                res.steady_calls[k] = res.steady_calls.get(k, 0) + v
        log(f"  steady: median {statistics.median(res.steady):.3f} s, max {max(res.steady):.3f} s")
        held = len(env.dep.held_jobs())
        mark = len(proxy.snapshot())
        t = time.monotonic()
        env.dep.fire_sweep()
        time.sleep(0.2)
        idle()
        res.refresh_sweep_seconds = time.monotonic() - t
        res.refresh_sweep = counts(mark)
        res.refreshed = sum(1 for c in proxy.snapshot()[mark:] if c.operation == "CodePipeline.PutJobSuccessResult"
                            and c.status == 200 and c.info.get("continuation"))
        if res.refreshed != held:
            res.note = f"the refresh sweep answered {res.refreshed} of {held} held jobs"
        return res
    finally:
        env.close()


def _wait(progress: Any, deadline: float, log: Any) -> str | None:
    """Polls `progress()` (None when done, else what is left, logged every 15 s) until done or
    `deadline` (monotonic); returns what was left at the deadline, None when done."""
    last_report = time.monotonic()
    while True:
        left = progress()
        if left is None or time.monotonic() > deadline:
            return left
        if time.monotonic() - last_report > 15:
            log(f"  ... {left}")
            last_report = time.monotonic()
        time.sleep(0.25)


def _list_execution_names(env: Environment, res: Throughput) -> list[str]:
    names: list[str] = []
    token = None
    while True:
        kw: dict[str, Any] = {"stateMachineArn": env.dep.state_machine_arn, "maxResults": 1000}
        if token:
            kw["nextToken"] = token
        page = env.sfn.list_executions(**kw)
        names += [e["name"] for e in page["executions"]]
        for e in page["executions"]:
            res.execution_status[e["status"]] = res.execution_status.get(e["status"], 0) + 1
        token = page.get("nextToken")
        if not token:
            return names


# What a lost original job's CodePipeline status says happened to it.
LOST_STAGE = {
    "Queued": "never polled",
    "Dispatched": "polled, never acknowledged",
    "InProgress": "acknowledged, no execution",
    "Failed": "answered as failed",
    "Succeeded": "answered as succeeded without an execution",
}


def account(env: Environment, res: Throughput, pipeline: str, invocations: list[Any]) -> None:
    """Lost and duplicated jobs, once the poller has stopped. Every original job of the pipeline
    (from the local stack's job listing, with its status) must have exactly one execution named
    after it; a lost job is classified by its status, and counted apart when the invocation that
    polled it was killed at the function timeout (the sandbox that sent the PollForJobs, from the
    proxy, ran a TimedOut invocation at that moment). Then CodePipeline's side: each execution
    should have one queued continuation job carrying its ARN, and no job may be left polled and
    unanswered."""
    names = _list_execution_names(env, res)
    res.executions = len(names)
    jobs = env.stack.jobs(pipeline)
    originals = {j["id"]: j for j in jobs if not j["continuationToken"]}
    named = set(names)
    # A fresh stack: every execution must be named after one original job, and only once.
    res.duplicated = (len(names) - len(named)) + len(named - set(originals))
    lost = [j for jid, j in originals.items() if jid not in named]
    res.lost = len(lost) + max(0, res.jobs - len(originals))  # originals missing from the listing: never created
    for j in lost:
        stage = LOST_STAGE.get(j["status"], j["status"])
        res.lost_by_stage[stage] = res.lost_by_stage.get(stage, 0) + 1
    res.started_unanswered = sum(1 for jid, j in originals.items() if jid in named and j["status"] in ("Dispatched", "InProgress"))
    # Which invocation polled each job: the proxy knows the sandbox process of every PollForJobs.
    offset = time.time() - time.monotonic()  # invocations keep monotonic times, the proxy wall-clock times
    killed = [inv for inv in invocations if inv.status == "TimedOut" and inv.pid is not None and inv.started_at is not None]
    res.poller_timeouts = sum(1 for inv in invocations if inv.status == "TimedOut")
    polled_by_killed: set[str] = set()
    for c in env.proxies["PollerFunction"].snapshot():
        if c.operation != "CodePipeline.PollForJobs" or not c.info.get("jobs"):
            continue
        for inv in killed:
            if c.pid == inv.pid and inv.started_at + offset - 0.05 <= c.received <= (inv.ended_at or float("inf")) + offset:
                polled_by_killed.update(c.info["jobs"])
                break
    res.jobs_polled_by_killed = len(polled_by_killed)
    res.lost_to_timeouts = sum(1 for j in lost if j["id"] in polled_by_killed)
    # CodePipeline's side: each execution's current continuation job is queued, or held (in progress,
    # named by its record in the held-jobs table).
    arns = {env.dep.execution_arn(n) for n in named}
    continuations = [j for j in jobs if j["continuationToken"]]
    held = {r["job_id"] for r in env.dep.held_jobs().values()}
    # A token is the execution ARN, with "|<last state>" after the first re-check.
    waiting = [j for j in continuations if j["status"] == "Queued" or (j["status"] == "InProgress" and j["id"] in held)]
    queued_tokens = [j["continuationToken"].split("|", 1)[0] for j in waiting]
    res.continuations_unanswered = sum(1 for j in continuations if j["status"] in ("Dispatched", "InProgress") and j["id"] not in held)
    res.executions_without_continuation = len(arns - set(queued_tokens))
    checks = []
    if res.lost_by_stage:
        checks.append("lost jobs by status: " + ", ".join(f"{k} {v}" for k, v in sorted(res.lost_by_stage.items())))
    if res.poller_timeouts:
        checks.append(f"{res.poller_timeouts} poller invocations killed at the function timeout, holding {len(polled_by_killed)} "
                      f"polled jobs, {res.lost_to_timeouts} of them lost")
    if res.started_unanswered:
        checks.append(f"{res.started_unanswered} original jobs with an execution but never answered")
    if res.executions_without_continuation or res.continuations_unanswered or len(queued_tokens) != len(set(queued_tokens)):
        checks.append(f"CodePipeline check: {len(queued_tokens)} queued or held continuation jobs ({len(set(queued_tokens))} distinct) "
                      f"for {len(arns)} executions, {res.executions_without_continuation} executions without one, "
                      f"{res.continuations_unanswered} continuation jobs polled and left unanswered without a hold")
    # The same from CodePipeline's API: PollForJobs must return exactly the jobs still Queued.
    listed_queued = sorted(j["id"] for j in jobs if j["status"] == "Queued")
    polled: list[str] = []
    while True:
        batch = env.cp.poll_for_jobs(actionTypeId=env.dep.action_type, maxBatchSize=100)["jobs"]
        if not batch:
            break
        polled += [j["id"] for j in batch]
    if sorted(polled) != listed_queued:
        checks.append(f"PollForJobs returned {len(polled)} jobs where the stack lists {len(listed_queued)} queued")
    if checks:
        res.note = "; ".join(([res.note] if res.note else []) + checks)


def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None
