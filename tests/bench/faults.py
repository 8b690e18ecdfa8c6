"""Section 6 of the benchmark: faults around a running build, in the local stack with the real
binaries and the template's schedules running (the keeper's and the poller's sweep).

Each case is a small function in CASES: it gets a build whose command is running on its
instance, provokes one fault and says how the job's answer shows. The runner measures, from the
fault (time.monotonic in the bench): the instance seen shutting-down or terminated, the job
answered (the action's final status in GetPipelineState, or for a case whose action is already
final at the fault, the build stopped), which keeper run acted; then, after the keeper's next run,
the pipeline's instances still live (leaked) and its executions beyond the first (duplicated).

Every case has its own pipeline and they run at once in one deployment, except cases marked
`exclusive` (they break a function every build shares, e.g. the completion function): each of
those provokes its fault only once every other case has been answered and terminated."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from tests.localstack.helpers import wait_until

from .scenarios import Environment

GONE = ("shutting-down", "terminated")
FINAL = ("Succeeded", "Failed")
STATUS_CHANGE = "Step Functions Execution Status Change"
# Long enough that only the fault ends the build; the document's heartbeats keep it alive.
COMMAND = "echo fault bench build started\nsleep 1800"
OBSERVE_EVERY = 0.25  # s between two looks at the instance and the action
KEEPER_RULE, SWEEP_RULE = "KeeperFunction.Keep", "PollerFunction.Sweep"


@dataclass
class Run:
    """One case: its build, its fault and what the bench saw after it (monotonic times)."""
    case: str
    how: str = ""  # how the fault is provoked (the case's docstring)
    exclusive: bool = False
    pipeline: str = ""
    instance_id: str = ""
    execution_arn: str = ""
    execution_input: dict[str, Any] = field(default_factory=dict)
    fault: float | None = None
    terminated: float | None = None  # instance seen shutting-down or terminated
    answered: float | None = None  # see `answer`
    answer: str = ""  # what `answered` is: "job answered" or "build stopped (...)"
    status: str = ""  # the action's final status, or the execution's for a stopped build
    message: str = ""  # the job's error message, or the stop's error and cause
    terminated_by: str = ""
    answered_by: str = ""
    keeper_acted: float | None = None  # start of the first keeper run after the fault that acted on this build
    leak_check: float | None = None  # start of the keeper run after which leaks were counted
    leaked: int | None = None  # instances of the pipeline neither shutting-down nor terminated then
    duplicated: int | None = None  # executions of the pipeline beyond the first
    problems: list[str] = field(default_factory=list)  # what differs from what the case expects
    note: str = ""  # not measured, and why

    def after(self, t: float | None) -> float | None:
        return None if t is None or self.fault is None else t - self.fault


@dataclass
class Answer:
    """How a case's job shows its answer: `poll()` gives (status, message) once it does, and the
    result must contain every string of `expect` (status and message together)."""
    what: str
    poll: Callable[[], tuple[str, str] | None]
    expect: tuple[str, ...] = ()
    cleanup: Callable[[], None] | None = None  # once answered and terminated (or given up)
    terminator: str = "outside the product (the fault)"  # who ends the instance when no Lambda does


class Bench:
    """The deployment the cases share, with the clients they use from every thread."""

    def __init__(self, env: Environment, log: Callable[[str], None]):
        self.env, self.dep, self.log = env, env.dep, log
        self.cp, self.sfn, self.ssm = env.cp, env.sfn, env.ssm
        self.ec2 = env.stack.client("ec2")
        rules = env.stack.router.rules
        self.keeper_period = float(rules[self.dep.rules[KEEPER_RULE]].every)
        self.sweep_period = float(rules[self.dep.rules[SWEEP_RULE]].every)

    # ------------------------------------------------------------------ what the cases read
    def action(self, pipeline: str) -> dict[str, Any]:
        return self.env.action_state(pipeline)

    def job_answered(self, run: Run, expect: tuple[str, ...]) -> Answer:
        def poll() -> tuple[str, str] | None:
            latest = self.action(run.pipeline)
            if latest.get("status") not in FINAL:
                return None
            return latest["status"], (latest.get("errorDetails") or {}).get("message") or latest.get("summary", "")
        return Answer("job answered", poll, expect)

    def build_stopped(self, run: Run, why: str, expect: tuple[str, ...]) -> Answer:
        def poll() -> tuple[str, str] | None:
            d = self.sfn.describe_execution(executionArn=run.execution_arn)
            if d["status"] == "RUNNING":
                return None
            return d["status"], f"({d.get('error', '')}) {d.get('cause', '')}"
        return Answer(f"build stopped ({why})", poll, expect)

    def instance_state(self, instance_id: str) -> str:
        found = self.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        return found[0]["Instances"][0]["State"]["Name"]

    def live_instances(self, **tags: str) -> list[str]:
        return [i["InstanceId"] for i in self.dep.instances(**tags) if i["State"]["Name"] not in GONE]

    def executions(self, pipeline: str) -> list[str]:
        arns = []
        for page in self.sfn.get_paginator("list_executions").paginate(stateMachineArn=self.dep.state_machine_arn):
            for e in page["executions"]:
                d = self.sfn.describe_execution(executionArn=e["executionArn"])
                if json.loads(d["input"])["Pipeline"]["Name"] == pipeline:
                    arns.append(e["executionArn"])
        return arns

    def keeper_runs(self, since: float) -> list[Any]:
        """Finished keeper invocations that began at or after `since`, oldest first."""
        invs = [i for i in list(self.dep.keeper.invocations) if i.started_at is not None and i.started_at >= since and i.done.is_set()]
        return sorted(invs, key=lambda i: i.started_at)


# ---------------------------------------------------------------- the cases
def pipeline_abandoned(b: Bench, run: Run) -> Answer:
    """Stop and abandon: the action is Abandoned at once and CodePipeline tells the worker
    nothing; the keeper's ListActionExecutions lookup stops the build."""
    b.cp.stop_pipeline_execution(pipelineName=run.pipeline, pipelineExecutionId=run.execution_input["Pipeline"]["ExecutionId"],
                                 abandon=True, reason="bench: wrong commit")
    status = b.action(run.pipeline).get("status")
    if status != "Abandoned":
        run.problems.append(f"action {status} after the stop, not Abandoned")
    return b.build_stopped(run, "the action showed Abandoned at the fault", ("ABORTED", "(PipelineActionNotInProgress)"))


def completion_event_lost(b: Bench, run: Run) -> Answer:
    """An operator stops the execution and its ABORTED event never reaches the completion function."""
    b.env.stack.router.lose_next({"detail-type": [STATUS_CHANGE], "detail": {"executionArn": [run.execution_arn], "status": ["ABORTED"]}})
    b.sfn.stop_execution(executionArn=run.execution_arn, error="Stopped", cause="stopped by an operator")
    answer = b.job_answered(run, ("Failed", "stopped (aborted) (Stopped): stopped by an operator"))

    def check() -> None:
        if not any(ev["detail"].get("executionArn") == run.execution_arn for ev in b.env.stack.router.lost):
            run.problems.append("the ABORTED event was not lost")
    answer.cleanup = check
    return answer


def terminated_from_outside(b: Bench, run: Run) -> Answer:
    """Someone terminates the build's instance (console, another tool, a host failure)."""
    b.ec2.terminate_instances(InstanceIds=[run.instance_id])
    return b.job_answered(run, ("Failed", "(InstanceLost)", run.instance_id))


def spot_interrupted(b: Bench, run: Run) -> Answer:
    """EC2 posts a spot interruption notice (two minutes) for the build's spot instance; the
    document reports SpotInterrupted and the state machine builds again on demand."""
    b.env.stack.spot_interrupt(run.instance_id, notice_seconds=120)
    answer = b.job_answered(run, ("Succeeded", f"restarted on a new instance after a spot interruption of {run.instance_id}"))
    answer.terminator = "the state machine (ReleaseInterrupted)"
    return answer


def heartbeat_timed_out(b: Bench, run: Run) -> Answer:
    """An operator stops the execution and its ABORTED event is lost: the document's next
    heartbeat is refused (the task is closed) and the instance shuts itself down."""
    b.env.stack.router.lose_next({"detail-type": [STATUS_CHANGE], "detail": {"executionArn": [run.execution_arn], "status": ["ABORTED"]}})
    b.sfn.stop_execution(executionArn=run.execution_arn, error="Stopped", cause="stopped by an operator")
    answer = b.job_answered(run, ("Failed", "stopped (aborted) (Stopped): stopped by an operator"))
    answer.terminator = "the instance itself (heartbeat refused: shutdown now)"

    def check() -> None:
        requests = b.env.stack.shutdowns(run.instance_id)
        if not requests or requests[-1]["When"] != "now":
            run.problems.append(f"the instance did not shut itself down: {requests}")
    answer.cleanup = check
    return answer


def completion_failing(b: Bench, run: Run) -> Answer:
    """The completion function fails every invocation (Lambda's two retries too) and an operator
    stops the execution: only the keeper and the poller's sweep are left."""
    completion = b.dep.completion
    completion.fail_next(1_000_000)
    b.sfn.stop_execution(executionArn=run.execution_arn, error="Stopped", cause="stopped by an operator")
    answer = b.job_answered(run, ("Failed", "stopped (aborted) (Stopped): stopped by an operator"))

    def restore() -> None:
        completion.fail_next(0)
        mine = [i for i in list(completion.invocations) if i.event.get("detail", {}).get("executionArn") == run.execution_arn
                and i.event["detail"].get("status") == "ABORTED"]
        if not mine or any((i.error or {}).get("errorType") != "Injected" for i in mine):
            run.problems.append(f"completion invocations on the abort: {[i.status for i in mine]}, not all failed")
    answer.cleanup = restore
    return answer


@dataclass(frozen=True)
class Case:
    name: str
    provoke: Callable[[Bench, Run], Answer] | None  # None: not built yet
    exclusive: bool = False  # breaks something every build shares: provoked alone
    command: str = COMMAND
    configuration: tuple[tuple[str, str], ...] = ()  # action configuration besides the image, type and command


CASES = [
    Case("Pipeline stopped and abandoned mid-build", pipeline_abandoned),
    Case("Completion event lost after an abort", completion_event_lost),
    Case("Instance terminated from outside mid-build", terminated_from_outside),
    Case("Completion function failing every invocation, execution aborted", completion_failing, exclusive=True),
    # Restarted on demand, the build runs to its end: a command that ends.
    Case("Spot interruption mid-build", spot_interrupted, command="echo fault bench build started\nsleep 20",
         configuration=(("Capacity", "spot-then-on-demand"),)),
    Case("Heartbeat answered TaskTimedOut", heartbeat_timed_out),
]


# ---------------------------------------------------------------- the runner
@dataclass
class Faults:
    runs: list[Run]
    keeper_period: float
    keeper_schedule: str  # as the template states it
    sweep_period: float
    concurrency: int
    left_running: int | None = None  # instances of the deployment live after the last keeper run
    seconds: float = 0.0  # wall time of the whole section


def keeper_schedule_in_template() -> str:
    """The keeper's schedule as cloudformation/template.yml states it (a parameter's default)."""
    from tests.deploy import load_template

    t = load_template()
    schedule = t["Resources"]["KeeperFunction"]["Properties"]["Events"][KEEPER_RULE.split(".")[1]]["Properties"]["Schedule"]
    if isinstance(schedule, dict) and "Ref" in schedule:
        return f"{t['Parameters'][schedule['Ref']]['Default']} (the default of the template's {schedule['Ref']} parameter)"
    return str(schedule)


def measure(bin_dir: str, log: Callable[[str], None] = print, cases: list[Case] | None = None, concurrency: int = 4) -> Faults:
    t_start = time.monotonic()
    cases = CASES if cases is None else cases
    # Agent checks shortened as in the other sections (the agent is online at once here); the
    # schedules run as deployed: the keeper and the sweep on their timers from the deployment on.
    env = Environment(bin_dir, substitutions={"AgentPollSeconds": "1", "AgentPollMaxSeconds": "2"}, concurrency=concurrency)
    try:
        b = Bench(env, log)
        runs = [Run(c.name, " ".join((c.provoke.__doc__ or "").split()) if c.provoke else "", c.exclusive) for c in cases]
        res = Faults(runs, b.keeper_period, keeper_schedule_in_template(), b.sweep_period, concurrency)
        log(f"faults: keeper every {b.keeper_period:.0f} s, sweep every {b.sweep_period:.0f} s, {concurrency} sandboxes per function")
        ended = {c.name: threading.Event() for c in cases}
        shared = [c.name for c in cases if c.provoke and not c.exclusive]
        exclusive = [c.name for c in cases if c.provoke and c.exclusive]
        threads = []
        for case, run in zip(cases, res.runs):
            if case.provoke is None:
                run.note = "not measured: not built yet"
                ended[case.name].set()
                continue
            # An exclusive case waits for the shared ones and the exclusive ones before it.
            before = shared + exclusive[:exclusive.index(case.name)] if case.exclusive else []
            t = threading.Thread(target=_run_case, args=(b, case, run, [ended[n] for n in before], ended[case.name]),
                                 name=f"fault-{case.name}", daemon=True)
            t.start()
            threads.append(t)
        for t in threads:
            t.join()
        # The whole deployment after the last keeper run: nothing of any case may be left.
        last = max((r.leak_check for r in res.runs if r.leak_check is not None), default=None)
        if last is not None:
            res.left_running = len(b.live_instances())
        res.seconds = time.monotonic() - t_start
        return res
    finally:
        env.close()


def _run_case(b: Bench, case: Case, run: Run, wait_for: list[threading.Event], done: threading.Event) -> None:
    deadline_after = 2 * max(b.keeper_period, b.sweep_period) + 60
    answer: Answer | None = None
    try:
        _start_build(b, run, case)
        for ev in wait_for:
            ev.wait()
        run.fault = time.monotonic()
        answer = case.provoke(b, run)  # type: ignore[misc]
        _observe(b, run, answer, run.fault + deadline_after)
    except Exception as e:  # noqa: BLE001 - reported in the row
        run.problems.append(f"{type(e).__name__}: {e}")
    finally:
        if answer and answer.cleanup:
            try:
                answer.cleanup()
            except Exception as e:  # noqa: BLE001
                run.problems.append(f"cleanup: {e}")
        done.set()
    if run.fault is not None:
        try:
            _count_leaks(b, run, deadline=time.monotonic() + b.keeper_period + 60)
        except Exception as e:  # noqa: BLE001
            run.problems.append(f"leak check: {type(e).__name__}: {e}")
    b.log(f"  {case.name}: terminated after {_s(run.after(run.terminated))}, {run.answer or 'answer'} after "
          f"{_s(run.after(run.answered))}, leaked {run.leaked}, duplicated {run.duplicated}"
          + (f"; {'; '.join(run.problems)}" if run.problems else ""))


def _s(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f} s"


def _start_build(b: Bench, run: Run, case: Case) -> None:
    """A pipeline whose build command runs on its instance (the e2e tests' `building`)."""
    run.pipeline = f"bench-fault-{uuid.uuid4().hex[:6]}"
    b.env.create_pipeline(run.pipeline, case.command, **dict(case.configuration))
    tags = {"ec2-build:pipeline": run.pipeline}
    (instance,) = wait_until(lambda: b.dep.instances(**tags), 120, interval=0.5, what=f"{run.pipeline}: instance launched")
    run.instance_id = instance["InstanceId"]
    run.execution_arn = next(t["Value"] for t in instance["Tags"] if t["Key"] == "ec2-build:execution-arn")

    def command_running() -> bool:
        invs = b.ssm.list_command_invocations(InstanceId=run.instance_id)["CommandInvocations"]
        return any(i["Status"] == "InProgress" for i in invs)

    wait_until(command_running, 120, interval=0.5, what=f"{run.pipeline}: build command running")
    run.execution_input = json.loads(b.sfn.describe_execution(executionArn=run.execution_arn)["input"])


def _observe(b: Bench, run: Run, answer: Answer, deadline: float) -> None:
    """Looks at the instance and the answer every OBSERVE_EVERY s until both happened or `deadline`."""
    run.answer = answer.what
    while (run.terminated is None or run.answered is None) and time.monotonic() < deadline:
        now = time.monotonic()
        try:
            if run.terminated is None and b.instance_state(run.instance_id) in GONE:
                run.terminated = now
            if run.answered is None:
                got = answer.poll()
                if got:
                    run.answered = now
                    run.status, run.message = got
        except Exception:  # noqa: BLE001 - the local stack under load; look again
            pass
        time.sleep(OBSERVE_EVERY)
    if run.terminated is None:
        run.problems.append(f"instance not terminated in {deadline - run.fault:.0f} s")  # type: ignore[operator]
    if run.answered is None:
        run.problems.append(f"{answer.what.split(' (')[0]}: not in {deadline - run.fault:.0f} s")  # type: ignore[operator]
    else:
        said = f"{run.status} {run.message}"
        missing = [s for s in answer.expect if s not in said]
        if missing:
            run.problems.append(f"the answer lacks {missing}")
    _who(b, run, answer)


def _who(b: Bench, run: Run, answer: Answer) -> None:
    """Which keeper run acted on the build, and which function terminated the instance and answered
    (once the keeper and completion invocations begun by now have ended: an instance is seen
    terminated before the invocation that terminated it has returned)."""
    now = time.monotonic()
    for fn in (b.dep.keeper, b.dep.completion):
        try:
            wait_until(lambda: all(i.done.is_set() for i in list(fn.invocations) if i.started_at is not None and i.started_at <= now),
                       fn.timeout + 10, interval=0.2, what=f"{fn.name}: invocations begun by now to end")
        except TimeoutError as e:
            run.problems.append(str(e))
    for inv in b.keeper_runs(run.fault):  # type: ignore[arg-type]
        r = inv.result or {}
        acted = {k for k in ("terminated_orphans", "terminated_overdue", "stopped_not_in_progress", "stopped_instance_lost")
                 if run.instance_id in r.get(k, []) or run.execution_arn in r.get(k, [])}
        if acted:
            run.keeper_acted = inv.started_at
            if "terminated_orphans" in acted or "terminated_overdue" in acted:
                run.terminated_by = "keeper"
            if run.answer.startswith("build stopped") and acted & {"stopped_not_in_progress", "stopped_instance_lost"}:
                run.answered_by = "keeper, StopExecution"
            break
    released = [i for i in list(b.dep.completion.invocations) if i.started_at is not None and i.started_at >= run.fault
                and run.instance_id in ((i.result or {}).get("released") or [])]
    if not run.terminated_by:
        run.terminated_by = "completion function" if released else answer.terminator
    if not run.answered_by and run.answered is not None:
        jobs = {j["id"] for j in b.env.stack.jobs(run.pipeline)}
        by = [(c.answered, lid) for lid, calls in b.env.calls().items() for c in calls
              if c.operation in ("CodePipeline.PutJobSuccessResult", "CodePipeline.PutJobFailureResult") and c.status == 200
              and c.info.get("jobId") in jobs and not c.info.get("continuation")]
        run.answered_by = {"PollerFunction": "poller", "CompletionFunction": "completion function"}.get(min(by)[1], min(by)[1]) if by else "?"


def _count_leaks(b: Bench, run: Run, deadline: float) -> None:
    """After the first keeper run that began once the case ended: the pipeline's live instances
    and its executions beyond the first."""
    since = time.monotonic()
    while not b.keeper_runs(since):
        if time.monotonic() > deadline:
            run.problems.append(f"no keeper run in the {deadline - since:.0f} s after the case")
            return
        time.sleep(0.5)
    run.leak_check = b.keeper_runs(since)[0].started_at
    run.leaked = len(b.live_instances(**{"ec2-build:pipeline": run.pipeline}))
    run.duplicated = max(0, len(b.executions(run.pipeline)) - 1)
