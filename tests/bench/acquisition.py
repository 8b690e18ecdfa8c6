"""Section "Acquisition": execution started → build command running, for a fresh instance, a
stopped pool's and a running pool's, in a deployment of its own whose emulated agent comes online
BOOT_SECONDS after a first boot and START_SECONDS after a start from stopped."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from tests.deploy import deploy
from tests.localstack import LocalStack
from tests.localstack.helpers import amis, custom_stage, s3_source_pipeline, wait_until, zip_bytes

from .scenarios import median

# The emulator's agent delays, the part of each time that stands for EC2 and the OS; what is
# left is the product's (registry, state machine, agent polling granularity).
BOOT_SECONDS = 8.0
START_SECONDS = 2.0
STRATEGIES = (("fresh instance", None, BOOT_SECONDS), ("stopped pool", "stopped", START_SECONDS),
              ("running pool", "running", 0.0))
POLLING = {"AgentPollSeconds": "1", "AgentPollMaxSeconds": "2"}
PREPARATION_POLLING = {"AgentPollSeconds": "1", "AgentPollAttempts": "60"}


@dataclass
class Strategy:
    label: str
    emulator_delay: float
    to_command: list[float] = field(default_factory=list)
    transitions: list[int] = field(default_factory=list)
    # The same less 4 per agent check beyond the first (Wait, Check, Choice, Pass): the count
    # when the agent answers at once, which the emulator's delays do not give.
    at_first_check: list[int] = field(default_factory=list)
    served_from_pool: int = 0


@dataclass
class Acquisition:
    strategies: list[Strategy]
    reps: int
    seconds: float


def _history(sfn: Any, arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"executionArn": arn, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**kwargs)
        events += page["events"]
        if not page.get("nextToken"):
            return events
        kwargs["nextToken"] = page["nextToken"]


def _build_command_running(events: list[dict[str, Any]]) -> float | None:
    """Seconds from ExecutionStarted to RunBuild's task being submitted (SSM accepted the command)."""
    started = next(e["timestamp"] for e in events if e["type"] == "ExecutionStarted")
    in_build = False
    for e in events:
        name = e.get("stateEnteredEventDetails", {}).get("name")
        if name is not None:
            in_build = name == "RunBuild"
        if in_build and e["type"] == "TaskSubmitted":
            return (e["timestamp"] - started).total_seconds()
    return None


def measure(bin_dir: str, log: Callable[[str], None], reps: int = 3) -> Acquisition:
    t0 = time.monotonic()
    with LocalStack() as stack:
        linux, _ = amis(stack)
        stack.set_agent(images={linux: f"delay={BOOT_SECONDS:g},start={START_SECONDS:g}"})
        pools = [{"Name": name, "ImageId": linux, "InstanceTypes": ["t3.large"], "Size": reps, "Mode": name}
                 for _, name, _ in STRATEGIES if name]
        dep = deploy(stack, name="bench-acquisition", bin_dir=bin_dir, substitutions=POLLING, schedule=False,
                     prepare_substitutions=PREPARATION_POLLING, parameters={"Pools": json.dumps(pools)})
        sfn, s3 = stack.client("stepfunctions"), stack.client("s3")
        dep.keep()
        wait_until(lambda: not dep.preparations("RUNNING"), 60 + 3 * BOOT_SECONDS * reps, interval=0.5,
                   what="pools prepared")
        ready = {p["Name"]: {i["InstanceId"] for i in dep.pool_registry(p["Name"]) if i["State"] == "ready"} for p in pools}
        log(f"acquisition: pools ready {', '.join(f'{k} {len(v)}' for k, v in ready.items())}")
        bucket = "bench-acq-" + uuid.uuid4().hex[:6]
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="source.zip", Body=zip_bytes({"README": "bench\n"}))
        results = []
        for label, pool, delay in STRATEGIES:
            result = Strategy(label, delay)
            for _ in range(reps):
                name = "acq-" + uuid.uuid4().hex[:8]
                config = {"ImageId": linux, "InstanceType": "t3.large", "Command": "true", **({"Pool": pool} if pool else {})}
                s3_source_pipeline(stack, name, bucket, "source.zip",
                                   [custom_stage("Build", "Build", dep.action_type["provider"], ["SourceOutput"], [], config,
                                                 category=dep.action_type["category"])],
                                   artifact_bucket=dep.artifact_bucket)

                def finished() -> dict[str, Any] | None:
                    for e in sfn.list_executions(stateMachineArn=dep.state_machine_arn)["executions"]:
                        d = sfn.describe_execution(executionArn=e["executionArn"])
                        if json.loads(d["input"])["Pipeline"]["Name"] == name and d["status"] != "RUNNING":
                            return d
                    return None

                d = wait_until(finished, 120, interval=0.3, what=f"{label} build")
                events = _history(sfn, d["executionArn"])
                seconds = _build_command_running(events)
                if d["status"] == "SUCCEEDED" and seconds is not None:
                    result.to_command.append(seconds)
                    entered = [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]
                    result.transitions.append(len(entered))
                    result.at_first_check.append(len(entered) - 4 * max(0, entered.count("CheckAgent") - 1))
                    if pool and json.loads(d["output"])["InstanceId"] in ready[pool]:
                        result.served_from_pool += 1
                log(f"acquisition: {label}: {d['status']}, started → command {seconds}")
            results.append(result)
    return Acquisition(results, reps, time.monotonic() - t0)


def section(add: Callable[[str], None], res: Acquisition | None, fmt: Callable[..., str]) -> None:
    add("## 8. Acquisition")
    add("")
    if res is None:
        add("(skipped)")
        add("")
        return
    add(f"Execution started → build command running (RunBuild's task submitted: SSM accepted the command), {res.reps} "
        f"builds per strategy run one after the other, pools of {res.reps} filled by the keeper beforehand (section took "
        f"{res.seconds:.0f} s). The emulated agent comes online {BOOT_SECONDS:g} s after a first boot and "
        f"{START_SECONDS:g} s after a start from stopped (on AWS: minutes for a first Windows boot, well under a minute for "
        f"a start); the product's own part is the time less that delay (registry, state machine, agent checks every "
        f"{POLLING['AgentPollSeconds']} s here, 10 s doubling to 60 s as deployed).")
    add("")
    add("| Strategy | Median (min–max) | Emulator's agent delay | Product (median − delay) | Transitions (agent online at the first check) | From the pool |")
    add("|---|---|---|---|---|---|")
    for s in res.strategies:
        m = median(s.to_command)
        product = None if m is None else max(0.0, m - s.emulator_delay)
        span = f"{fmt(min(s.to_command))}–{fmt(max(s.to_command))}" if s.to_command else "n/a"
        trans = sorted(set(s.transitions))
        first = sorted(set(s.at_first_check))
        pooled = "—" if s.label == "fresh instance" else f"{s.served_from_pool} of {len(s.to_command)}"
        add(f"| {s.label} | {fmt(m)} ({span}) | {s.emulator_delay:g} s | {fmt(product)} | "
            f"{', '.join(map(str, trans)) or 'n/a'} ({', '.join(map(str, first)) or 'n/a'}) | {pooled} |")
    add("")
    add("Transitions are the `StateEntered` events of each successful build; the emulator's agent delays make the agent "
        "answer after a few checks, 4 transitions each, and the count in brackets takes the checks beyond the first out. "
        "That count is constant whatever the build's length: 12 for a fresh instance, 16 at most from a pool "
        "(statemachine/README.md, \"Cost of a successful build\").")
    add("")


# Idle cost of a pool, per instance and day (inputs, not measurements; us-east-1 list prices).
EBS_GP3_GB_MONTH = 0.08


def idle_cost_lines(add: Callable[[str], None], ec2_example: tuple[str, float], root_gb: int) -> None:
    name, hourly = ec2_example
    ebs_day = root_gb * EBS_GP3_GB_MONTH * 12 / 365
    add(f"Idle cost of a warm pool, per instance and day (inputs: {name} ${hourly}/h, gp3 ${EBS_GP3_GB_MONTH} per GB-month, "
        f"a {root_gb} GB root volume): a stopped pool's instance bills only its volumes, ≈ ${ebs_day:.2f} a day "
        f"(plus a docker volume if the launch template adds one); a running pool's bills the instance as well, "
        f"≈ ${hourly * 24 + ebs_day:.2f} a day. The keeper's runs and the registry add no per-instance cost worth counting "
        "(one Query and a few conditional writes a minute, DynamoDB on demand); each replacement costs one preparation "
        "(its instance time until it is stopped, and about 20 state transitions).")
    add("")
