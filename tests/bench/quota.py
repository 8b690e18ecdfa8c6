"""Section 4's new jobs among running builds, and section 7's quota model: the API calls per
second the product would make for 1,000 running builds and a burst of 1,000 starts within a
minute, computed from the calls measured in sections 1 and 4, next to AWS's default quotas."""

from __future__ import annotations

import math
import statistics
from typing import Any

from .scenarios import AmongRunning, Throughput

# Step Functions default API quotas (token bucket: refill per second, bucket), us-east-1 and the
# other large regions (Step Functions developer guide, "Quotas", API action throttling).
SFN_QUOTAS = {
    "StepFunctions.StartExecution": (300, 1300),
    "StepFunctions.DescribeExecution": (15, 300),
    "StepFunctions.GetExecutionHistory": (20, 400),
    "StepFunctions.ListExecutions": (5, 200),
    "StepFunctions.StopExecution": (200, 1000),
}
# DynamoDB on-demand: 40,000 read and 40,000 write request units per second per table by default
# (DynamoDB developer guide, "Quotas", throughput default quotas).
DYNAMODB_UNITS = 40_000
DYNAMODB_WRITES = {"DynamoDB.PutItem", "DynamoDB.DeleteItem"}
# Items are under 1 KB: a write is 1 unit, a strongly consistent GetItem 1 unit; a Scan page of up
# to 1 MB read eventually consistently costs at most 128 units.
SCAN_PAGE_UNITS = 128
# Calls a scheduled sweep makes once, whatever the number of builds, per page.
PER_SWEEP = {"StepFunctions.ListExecutions": 1000, "DynamoDB.Scan": 2500}  # items per page (1 MB / 400 B)
SWEEP_SECONDS = 60

RUNNING = 1000
BURST = 1000
BURST_SECONDS = 60
BUILD_MINUTES = 30  # average build length assumed for the rate at which running builds end


def among_running_section(add: Any, res: AmongRunning | None) -> None:
    if res is None:
        return
    add(f"### New jobs among {res.running} running builds")
    add("")
    steady = res.steady
    add("| When the new job came | Job visible → execution started | Poller calls for it (by operation) |")
    add("|---|---|---|")

    def calls(c: dict[str, int], n: int = 1) -> str:
        total = sum(c.values()) / n
        return f"{total:.1f}: " + ", ".join(f"{k.split('.', 1)[1]} {v / n:.1f}" for k, v in sorted(c.items()))

    add(f"| right after the burst of {res.running} starts ({res.after_burst_queued} of their continuation jobs still queued) | "
        f"{res.after_burst:.3f} s | {calls(res.after_burst_calls)} |")
    if steady:
        add(f"| after one scheduled sweep, {len(steady)} new jobs one at a time | median {statistics.median(steady):.3f} s, "
            f"max {max(steady):.3f} s | {calls(res.steady_calls, len(steady))} per job |")
    add("")
    if res.refreshed:
        add(f"The scheduled sweep after the burst: {calls(res.first_sweep)} calls. A scheduled sweep that refreshes every held "
            f"job ({res.refreshed}, HELD_JOB_REFRESH_SECONDS = 0 in this deployment): {calls(res.refresh_sweep)} calls in "
            f"{res.refresh_sweep_seconds:.1f} s, that is per build " +
            ", ".join(f"{k.split('.', 1)[1]} {v / res.refreshed:.2f}" for k, v in sorted(res.refresh_sweep.items())
                      if k not in PER_SWEEP) +
            " (ListExecutions and Scan once a sweep, whatever the number of builds). The parked stand-in's state is not "
            "a build state, so each refresh reads the history (GetExecutionHistory); a real build in its build stage does "
            "not, so that count is an upper bound.")
    if res.note:
        add("")
        add(f"Note: {res.note}")
    add("")
    add(f"Method: a fresh stack; {res.running} runs of one pipeline started at once with the parked stand-in (section 4's "
        f"throughput method; STARTED events delivered as they come, {res.concurrency} poller sandboxes, no schedule). Then new "
        "pipelines, one at a time, whose creation starts a run: *visible* is when CreatePipeline returned (the job exists), "
        "*started* when StartExecution's answer for that job passed the proxy; the calls are every poller request at the proxy "
        "from the pipeline's creation until the poller was idle again (the STARTED invocation, which also holds the previous new "
        "build's continuation job when it meets it).")
    add("")


def model(tp: Throughput | None, res: AmongRunning | None, completion_calls: dict[str, int],
          refresh_seconds: int) -> list[dict[str, Any]]:
    """Calls per second for RUNNING builds (scheduled sweeps: refreshes spread over
    `refresh_seconds`, plus once-a-sweep pages), for a burst of BURST starts within BURST_SECONDS
    (the whole-burst calls of section 4), and for the running builds ending (every call of the
    completion function in sections 1-2 per build it saw end, `completion_calls["builds"]`;
    RUNNING builds of BUILD_MINUTES on average)."""
    rows: dict[str, dict[str, float]] = {}

    def add(op: str, column: str, rate: float) -> None:
        rows.setdefault(op, {"running": 0.0, "burst": 0.0, "ending": 0.0})[column] += rate

    if res and res.refreshed:
        for op, n in res.refresh_sweep.items():
            if op in PER_SWEEP:
                add(op, "running", math.ceil(RUNNING / PER_SWEEP[op]) / SWEEP_SECONDS)
            else:
                add(op, "running", n / res.refreshed * RUNNING / refresh_seconds)
    if tp and tp.burst_calls:
        for op, n in tp.burst_calls.items():
            add(op, "burst", n / tp.jobs * BURST / BURST_SECONDS)
    ended = completion_calls.get("builds", 0)
    for op, n in completion_calls.items():
        if op != "builds" and ended:
            add(op, "ending", n / ended * RUNNING / (BUILD_MINUTES * 60))
    out = []
    for op, r in sorted(rows.items()):
        total = r["running"] + r["burst"] + r["ending"]
        if op in SFN_QUOTAS:
            refill, bucket = SFN_QUOTAS[op]
            quota, use = f"{refill} /s (bucket {bucket})", total / refill
        elif op.startswith("DynamoDB."):
            units = total * (SCAN_PAGE_UNITS if op == "DynamoDB.Scan" else 1)
            kind = "write" if op in DYNAMODB_WRITES else "read"
            quota, use = f"{DYNAMODB_UNITS:,} {kind} units /s per table ({units:.1f} units /s)", None
        elif op.startswith("CodePipeline."):
            quota, use = "unpublished", None
        else:
            quota, use = "see note", None
        out.append({"op": op, **r, "total": total, "quota": quota, "use": use})
    # DynamoDB: units of reads and of writes against one table's quota.
    for kind in ("read", "write"):
        units = sum(row["total"] * (SCAN_PAGE_UNITS if row["op"] == "DynamoDB.Scan" else 1) for row in out
                    if row["op"].startswith("DynamoDB.") and ((row["op"] in DYNAMODB_WRITES) == (kind == "write")))
        if units:
            out.append({"op": f"DynamoDB, all {kind}s (request units)", "running": None, "burst": None, "ending": None,
                        "total": units, "quota": f"{DYNAMODB_UNITS:,} /s per table", "use": units / DYNAMODB_UNITS})
    return out


def quota_section(add: Any, rows: list[dict[str, Any]], refresh_seconds: int) -> None:
    add("## 7. Quota model")
    add("")
    if not rows:
        add("(not computed: it needs section 4)")
        add("")
        return
    add(f"API calls per second of the functions for {RUNNING:,} running builds (scheduled sweep every {SWEEP_SECONDS} s, held "
        f"jobs refreshed every {refresh_seconds} s), a burst of {BURST:,} starts within {BURST_SECONDS} s, and the running "
        f"builds ending ({BUILD_MINUTES}-minute builds on average), all at once; next to each API's default quota. Target: "
        "every known quota under 50 % use.")
    add("")
    add("| API | Running builds /s | Burst of starts /s | Builds ending /s | Total /s | Default quota (refill) | Use |")
    add("|---|---|---|---|---|---|---|")

    def num(v: float | None) -> str:
        return "" if v is None else f"{v:.2f}"

    for r in rows:
        use = "n/a" if r["use"] is None else f"{100 * r['use']:.1f} % ({'met' if r['use'] < 0.5 else 'missed'})"
        add(f"| {r['op']} | {num(r['running'])} | {num(r['burst'])} | {num(r['ending'])} | {r['total']:.2f} | {r['quota']} | {use} |")
    add("")
    add("Method: *running builds* scales the per-build calls of section 4's refresh sweep (every held job due) to "
        f"{RUNNING:,} builds, each refreshed once per {refresh_seconds} s (the template's HELD_JOB_REFRESH_SECONDS), plus "
        "ListExecutions (1,000 executions a page) and the held-jobs Scan (items under 400 bytes, 1 MB a page) once per sweep; "
        "*burst* is the whole-burst calls per job of section 4's 1,000-job row times 1,000 over 60 s; *ending* is every call "
        "of the completion function in sections 1 and 2 (its polls and the build metrics' lookups included) per build that "
        "ended there, times the rate at which the running builds end. In section 1 a build ends seconds after it starts, "
        "before any scheduled sweep held its continuation job, so the completion function polls for it; a held job would "
        "be answered without a poll. CodePipeline publishes no quota "
        "for its job API (marked unpublished). Not in the table: the state machine's own calls per build (RunInstances, "
        "DescribeInstanceInformation, SendCommand, TerminateInstances; section 2's states): EC2 launches draw on the account's "
        "RunInstances resource bucket (1,000 instances, refilled at 2 per second; EC2 API reference, \"Request throttling\"), "
        "so a burst of 1,000 cold launches within a minute takes about 89 % of it (1,000 of 1,000 + 120 tokens). The Launch "
        "state retries `Ec2.RequestLimitExceeded` three times (2, 4 and 8 s, with jitter), so a second burst of that size "
        "within minutes would fail the launches that still find the bucket empty after those retries, each job failing with "
        "the throttling error (not measured here: the local stack does not throttle RunInstances).")
    add("")
