"""Choice rules of the state machine evaluated on the errors AWS really sends.

Under Step Functions, EC2 models no exception types: every EC2 error of an aws-sdk task arrives
as `Ec2.Ec2Exception` with EC2's message in Cause and no error code. moto names errors
differently, so these cases are checked here with a small evaluator of ASL Choice rules rather
than in the local stack."""

from __future__ import annotations

import fnmatch
import json
import os
import re
from typing import Any

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
with open(os.path.join(REPO, "statemachine", "build.asl.json")) as f:
    STATES = json.load(f)["States"]


def lookup(data: Any, path: str) -> Any:
    assert path.startswith("$.")
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path[2:]):
        if part.startswith("["):
            index = int(part[1:-1])
            if not isinstance(data, list) or index >= len(data):
                raise KeyError(path)
            data = data[index]
        elif not isinstance(data, dict) or part not in data:
            raise KeyError(path)
        else:
            data = data[part]
    return data


def matches(rule: dict[str, Any], data: dict[str, Any]) -> bool:
    if "And" in rule:
        return all(matches(r, data) for r in rule["And"])
    if "Or" in rule:
        return any(matches(r, data) for r in rule["Or"])
    if "Not" in rule:
        return not matches(rule["Not"], data)
    try:
        value = lookup(data, rule["Variable"])
    except KeyError:
        if "IsPresent" in rule:
            return not rule["IsPresent"]
        raise
    if "IsPresent" in rule:
        return rule["IsPresent"]
    if "StringMatches" in rule:
        # ASL: only '*' is special (escaped with a backslash); no '?' or '[' classes.
        pattern = rule["StringMatches"].replace("[", "[[]").replace("?", "[?]")
        return isinstance(value, str) and fnmatch.fnmatchcase(value, pattern)
    if "StringEquals" in rule:
        return value == rule["StringEquals"]
    if "NumericEquals" in rule:
        return value == rule["NumericEquals"]
    if "BooleanEquals" in rule:
        return value is rule["BooleanEquals"]
    for op, fn in (("NumericLessThan", lambda a, b: a < b), ("NumericGreaterThan", lambda a, b: a > b),
                   ("NumericGreaterThanEquals", lambda a, b: a >= b), ("NumericLessThanEquals", lambda a, b: a <= b)):
        if op in rule:
            return fn(value, rule[op])
        if op + "Path" in rule:
            return fn(value, lookup(data, rule[op + "Path"]))
    raise NotImplementedError(rule)


def choose(state: str, data: dict[str, Any]) -> str:
    s = STATES[state]
    assert s["Type"] == "Choice"
    for rule in s["Choices"]:
        if matches(rule, data):
            return rule["Next"]
    return s["Default"]


def launch_error(cause: str, error: str = "Ec2.Ec2Exception", throttles: int = 0) -> dict[str, Any]:
    return {"Run": {"Error": {"Error": error, "Cause": cause}, "Throttle": {"Count": throttles, "Delay": 2}}}


SUFFIX = " (Service: Ec2, Status Code: 500, Request ID: 0ed21094-6fec-467b-bc8f-777207682f73)"

CAPACITY = [
    "We currently do not have sufficient m5.large capacity in the Availability Zone you requested (eu-west-1a). "
    "Our system will be working on provisioning additional capacity. You can currently get m5.large capacity by not "
    "specifying an Availability Zone in your request or choosing eu-west-1b, eu-west-1c.",
    "There is no Spot capacity available that matches your request.",
    "Your requested instance type (m5.large) is not supported in your requested Availability Zone (us-east-1e). "
    "Please retry your request by not specifying an Availability Zone or choosing us-east-1a, us-east-1b.",
    "Max spot instance count exceeded",
    "Your Spot request price of 0.01 is lower than the minimum required Spot request fulfillment price of 0.02.",
    "You have requested more vCPU capacity than your current vCPU limit of 64 allows for the instance bucket that "
    "the specified instance type belongs to.",
    "Insufficient capacity.",
]

NOT_CAPACITY = [
    "The image id '[ami-0123456789abcdef0]' does not exist",
    "You are not authorized to perform this operation. Encoded authorization failure message: abc",
    "The provided credentials do not have permission to create the service-linked role for EC2 Spot Instances.",
    "The subnet ID 'subnet-00000000000000000' does not exist",
]

THROTTLED = ("Request limit exceeded. Account 123456789012 has been throttled on ec2:RunInstances because it "
             "exceeded its request rate limit.")


@pytest.mark.parametrize("cause", CAPACITY)
def test_capacity_errors_as_aws_sends_them_try_the_next_subnet(cause):
    assert choose("CapacityError?", launch_error(cause + SUFFIX)) == "NextSubnet"


@pytest.mark.parametrize("cause", NOT_CAPACITY)
def test_other_launch_errors_fail_the_acquisition(cause):
    assert choose("CapacityError?", launch_error(cause + SUFFIX)) == "AcquireFailed"


def test_error_codes_still_match_where_a_runtime_names_them():
    assert choose("CapacityError?", launch_error("", error="Ec2.InsufficientInstanceCapacity")) == "NextSubnet"


def test_throttled_launch_waits_and_retries_a_bounded_number_of_times():
    data = launch_error(THROTTLED + SUFFIX.replace("500", "503"))
    waits = []
    for _ in range(10):
        if choose("CapacityError?", data) != "LaunchThrottled":
            break
        # LaunchThrottled: Count + 1, Delay doubled, Wait = the delay before
        t = data["Run"]["Throttle"]
        waits.append(t["Delay"])
        data["Run"]["Throttle"] = {"Count": t["Count"] + 1, "Delay": t["Delay"] * 2}
    assert waits == [2, 4, 8, 16, 32]
    assert choose("CapacityError?", data) == "AcquireFailed"
    s = STATES["LaunchThrottled"]
    assert s["Parameters"] == {
        "Count.$": "States.MathAdd($.Run.Throttle.Count, 1)",
        "Delay.$": "States.MathAdd($.Run.Throttle.Delay, $.Run.Throttle.Delay)",
        "Wait.$": "$.Run.Throttle.Delay",
    }
    assert s["Next"] == "WaitAfterThrottle" and STATES["WaitAfterThrottle"]["Next"] == "Launch"


def test_throttle_counter_starts_at_zero():
    assert STATES["Prepare"]["Parameters"]["Throttle"] == {"Count": 0, "Delay": 2}


def test_read_only_describe_image_retries_ec2s_generic_exception():
    (retry,) = STATES["DescribeImage"]["Retry"]
    assert "Ec2.Ec2Exception" in retry["ErrorEquals"] and retry["MaxAttempts"] <= 3
    assert STATES["DescribeImage"]["Parameters"]["ImageIds.$"] == "States.Array($.Run.Image.Id)"


def test_run_build_retries_only_a_throttled_send_command_bounded_with_jitter():
    # Only throttling: a refused call created no command. Any other error goes to the Catch,
    # never to a second SendCommand. (moto names the error ssm.ThrottlingException, so this
    # runs here on the definition rather than in the local stack.)
    (retry,) = STATES["RunBuild"]["Retry"]
    assert retry["ErrorEquals"] == ["Ssm.ThrottlingException"]
    assert retry["MaxAttempts"] <= 4 and retry["JitterStrategy"] == "FULL" and retry["BackoffRate"] > 1
    catches = [e for c in STATES["RunBuild"]["Catch"] for e in c["ErrorEquals"]]
    assert "Ssm.ThrottlingException" not in catches and "States.ALL" in catches


def test_agent_waits_double_up_to_the_cap_and_never_beyond():
    # Prepare with AgentPollSeconds 10, AgentPollMaxSeconds 60, AgentPollAttempts 25 (the template's values).
    agent = {"Attempt": 1, "Attempts": 25, "Delay": 10, "Doubled": 20, "MaxDelay": 60}
    waits = [agent["Delay"]]
    for _ in range(100):
        nxt = choose("AgentOnline?", {"Run": {"AgentStatus": {"Online": 0}, "Agent": agent}})
        if nxt == "AgentTimeout":
            break
        assert nxt in ("AgentBackoff", "AgentNextAttempt")
        if nxt == "AgentBackoff":
            agent = {**agent, "Attempt": agent["Attempt"] + 1, "Delay": agent["Doubled"], "Doubled": agent["Doubled"] * 2}
        else:
            agent = {**agent, "Attempt": agent["Attempt"] + 1, "Delay": agent["MaxDelay"]}
        waits.append(agent["Delay"])
    assert waits[:5] == [10, 20, 40, 60, 60] and max(waits) == 60
    assert len(waits) == 25 and sum(waits) == 10 + 20 + 40 + 22 * 60  # about 23 minutes
    assert STATES["AgentBackoff"]["Parameters"]["Delay.$"] == "$.Run.Agent.Doubled"
    assert STATES["AgentNextAttempt"]["Parameters"]["Delay.$"] == "$.Run.Agent.MaxDelay"


def acquire(market_index: int, capacity: str, type_index: int = 1, type_count: int = 1) -> dict[str, Any]:
    """Data as MoreInstanceTypes? sees it after NextInstanceType."""
    return {"Instance": {"Capacity": capacity},
            "Run": {"Acquire": {"MarketIndex": market_index, "TypeIndex": type_index, "TypeCount": type_count,
                                "SubnetIndex": 0, "SubnetCount": 2}}}


def test_one_launch_state_takes_its_market_from_data():
    markets = STATES["Prepare"]["Parameters"]["Markets"]
    assert markets["Names"] == ["on-demand", "spot"]
    spot = {"MarketType": "spot", "SpotOptions": {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"}}
    assert markets["Options"] == [{}, spot]
    launch = STATES["Launch"]["Parameters"]
    assert launch["InstanceMarketOptions.$"] == "States.ArrayGetItem($.Run.Markets.Options, $.Run.Acquire.MarketIndex)"
    # A new ClientToken per market: the market's name is part of what is hashed.
    assert "States.ArrayGetItem($.Run.Markets.Names, $.Run.Acquire.MarketIndex)" in launch["ClientToken.$"]
    # No Choice on the market: the image lookup goes straight to the launch.
    assert STATES["DescribeImage"]["Next"] == "Launch"


def test_spot_then_on_demand_starts_the_list_again_on_demand_once():
    assert choose("MoreInstanceTypes?", acquire(1, "spot-then-on-demand")) == "FallBackToOnDemand"
    again = STATES["FallBackToOnDemand"]["Parameters"]
    assert (again["MarketIndex"], again["TypeIndex"], again["SubnetIndex"]) == (0, 0, 0)
    assert STATES["FallBackToOnDemand"]["Next"] == "Launch"
    assert choose("MoreInstanceTypes?", acquire(0, "spot-then-on-demand")) == "AcquireFailed"
    assert choose("MoreInstanceTypes?", acquire(1, "spot")) == "AcquireFailed"
    assert choose("MoreInstanceTypes?", acquire(1, "spot", type_index=0)) == "Launch"


LISTING_FAILED = {"Error": "States.TaskFailed", "Cause": "AccessDenied"}  # FindCommand's Catch result


@pytest.mark.parametrize("failure, data, expected", [
    # A successful build's command id is in the document's result: no lookup.
    (None, {"Result": {"CommandId": "c-1"}}, "Succeeded"),
    (None, {"Result": {}}, "CommandIdUnknown"),
    ("BuildFailed", {"Command": {"CommandIds": ["c-1"]}}, "AddCommandToFailure"),
    ("BuildTimeout", {"Command": {"CommandIds": ["c-1"]}}, "AddCommandToFailure"),
    ("ReleaseFailed", {"Command": {"CommandIds": ["c-1"]}}, "AddCommandToFailure"),
    ("ReleaseFailed", {"Result": {"CommandId": "c-1"}}, "Failed"),
    ("AgentTimeout", {"Command": {"CommandIds": []}}, "Failed"),
    ("BuildFailed", {"Command": LISTING_FAILED}, "Failed"),
])
def test_one_release_and_one_command_lookup_then_the_outcome(failure, data, expected):
    data = dict(data)
    if failure:
        data["Failure"] = {"Name": failure}
    # Failures look the command up before the release; success goes to the release at once.
    assert STATES["FindCommand"]["Next"] == "Release?"
    assert STATES["RunBuild"]["Next"] == "Release?"
    assert STATES["Release"]["Next"] == "Outcome?"
    assert choose("Outcome?", data) == expected


def test_release_failure_keeps_the_earlier_failure():
    assert [c["Next"] for c in STATES["Release"]["Catch"]] == ["EarlierFailure?"]
    assert choose("EarlierFailure?", {"Failure": {"Name": "BuildFailed"}}) == "ReleaseFailedAfterFailure"
    assert choose("EarlierFailure?", {"Result": {}}) == "ReleaseFailedAfterSuccess"
    assert "Before that" in STATES["ReleaseFailedAfterFailure"]["Parameters"]["Report"]["Cause.$"]
    assert STATES["ReleaseFailedAfterSuccess"]["Next"] == STATES["ReleaseFailedAfterFailure"]["Next"] == "Outcome?"
    # After a success there was no lookup: the report takes the document's command id.
    assert STATES["ReleaseFailedAfterSuccess"]["Parameters"]["Report"]["CommandId.$"] == "$.Result.CommandId"


POOLED = {"InstanceId": "i-1", "InstanceType": "m5.large", "Pool": "p"}


@pytest.mark.parametrize("data, expected", [
    ({"Launched": {"InstanceId": "i-1"}}, "Release"),
    ({"Launched": {"InstanceId": "i-1"}, "Failure": {"Name": "BuildFailed"}}, "Release"),
    ({"Launched": {**POOLED, "Mode": "stopped", "Reuse": "always"}}, "StopPoolInstance"),
    ({"Launched": {**POOLED, "Mode": "running", "Reuse": "always"}}, "ReturnToPool"),
    # A failed build's instance is not returned, whatever the pool's rule.
    ({"Launched": {**POOLED, "Mode": "stopped", "Reuse": "always"}, "Failure": {"Name": "BuildFailed"}}, "ForgetPoolInstance"),
    ({"Launched": {**POOLED, "Mode": "stopped", "Reuse": "never"}}, "ForgetPoolInstance"),
    ({"Launched": {**POOLED, "Mode": "running", "Reuse": "never"}}, "ForgetPoolInstance"),
])
def test_release_follows_the_pool_reuse_rule(data, expected):
    assert choose("Release?", data) == expected


def test_pool_release_states_end_in_termination_when_they_fail():
    assert STATES["StopPoolInstance"]["Next"] == "ReturnToPool"
    assert STATES["ReturnToPool"]["Next"] == "Outcome?"
    for name in ("StopPoolInstance", "ReturnToPool"):
        assert [c["Next"] for c in STATES[name]["Catch"]] == ["ForgetPoolInstance"]
    assert STATES["ForgetPoolInstance"]["Next"] == "Release"
    assert [c["Next"] for c in STATES["ForgetPoolInstance"]["Catch"]] == ["Release"]
    # Returning and forgetting are conditional on this execution's claim.
    assert STATES["ReturnToPool"]["Parameters"]["ConditionExpression"] == "ClaimedBy = :execution"
    assert STATES["ForgetPoolInstance"]["Parameters"]["ConditionExpression"] == "ClaimedBy = :execution"


def run_data(claim: dict[str, Any], ready: int = 0, pool: str | None = "p") -> dict[str, Any]:
    instance = {"ImageId": "ami-12345678", "InstanceTypes": ["m5.large"]}
    if pool:
        instance["Pool"] = pool
    return {"Instance": instance, "Run": {"Claim": claim, "Ready": {"Count": ready, "Ids": []}}}


def test_a_pooled_action_claims_before_launching_and_falls_back_at_once():
    fresh = {"Attempt": 1, "Attempts": 3, "Cold": False, "Reason": ""}
    assert choose("ImageFromParameter?", run_data(fresh)) == "FindReadyInstance"
    assert choose("ImageFromParameter?", run_data(fresh, pool=None)) == "DescribeImage"
    assert choose("ImageFromParameter?", run_data({**fresh, "Cold": True})) == "DescribeImage"
    assert choose("PoolHasReady?", run_data(fresh, ready=2)) == "ClaimInstance"
    assert choose("PoolHasReady?", run_data(fresh, ready=0)) == "ColdFallback"
    # Claims are bounded: after PoolClaimAttempts lost races, a fresh launch.
    assert choose("PoolHasReady?", run_data({**fresh, "Attempt": 3}, ready=2)) == "ClaimInstance"
    assert choose("PoolHasReady?", run_data({**fresh, "Attempt": 4}, ready=2)) == "ColdFallback"
    assert STATES["ClaimLost"]["Next"] == "FindReadyInstance"
    assert STATES["ClaimLost"]["Parameters"]["Attempt.$"] == "States.MathAdd($.Run.Claim.Attempt, 1)"
    assert STATES["ColdFallback"]["Parameters"]["Cold"] is True
    assert STATES["ColdFallback"]["Next"] == "ImageFromParameter?"
    claim = STATES["ClaimInstance"]
    assert claim["Resource"] == "arn:aws:states:::dynamodb:updateItem"
    assert claim["Parameters"]["ConditionExpression"] == "#state = :ready"
    assert [c["ErrorEquals"] for c in claim["Catch"]] == [["DynamoDB.ConditionalCheckFailedException"], ["States.ALL"]]
    assert [c["Next"] for c in claim["Catch"]] == ["ClaimLost", "ColdFallback"]
    assert [c["Next"] for c in STATES["FindReadyInstance"]["Catch"]] == ["ColdFallback"]


def test_a_stopped_pool_instance_is_started_a_running_one_checked_at_once():
    assert choose("PoolInstanceStopped?", {"Launched": {**POOLED, "Mode": "stopped"}}) == "StartPoolInstance"
    assert choose("PoolInstanceStopped?", {"Launched": {**POOLED, "Mode": "running"}}) == "CheckAgent"
    assert STATES["StartPoolInstance"]["Next"] == "WaitForAgent"


def successors(name: str) -> list[str]:
    s = STATES[name]
    nxt = [s["Next"]] if "Next" in s else []
    nxt += [c["Next"] for c in s.get("Catch", [])]
    nxt += [c["Next"] for c in s.get("Choices", [])] + ([s["Default"]] if "Default" in s else [])
    return nxt


def test_no_path_from_a_launched_instance_ends_without_the_release():
    # From the launch's success on, every way to an end (Succeeded or Failed) passes through a
    # release of the launched instance: Release, or ReleaseInterrupted before a restart after a
    # spot interruption (which goes back to Launch, for a new instance).
    # A claimed pool instance likewise ends in Release or ReturnToPool (which, when it fails,
    # leads to Release).
    terminations = {"Release", "ReleaseInterrupted"}
    for name in terminations:
        assert STATES[name]["Resource"] == "arn:aws:states:::aws-sdk:ec2:terminateInstances"
        assert STATES[name]["Parameters"] == {"InstanceIds.$": "States.Array($.Launched.InstanceId)"}
    releases = terminations | {"ReturnToPool"}
    seen, todo = set(), [STATES["Launch"]["Next"], STATES["ClaimInstance"]["Next"]]
    while todo:
        name = todo.pop()
        if name in seen or name in releases:
            continue
        seen.add(name)
        todo += successors(name)
    assert "Succeeded" not in seen and "Failed" not in seen, sorted(seen)
    assert {"WaitForAgent", "RunBuild", "AgentTimeout", "BuildTimeout", "BuildFailed", "SpotInterrupted?",
            "PrepareRestart", "SpotRestartsUsed", "StartPoolInstance", "PoolStartFailed", "StopPoolInstance",
            "ForgetPoolInstance"} <= seen
