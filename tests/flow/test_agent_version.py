"""The SSM Agent version check (issue 12, item 15): an agent older than 3.3.2746.0 (the first that
runs documents with interpolationType ENV_VAR) would never run the build, which would only end
as a heartbeat timeout. CheckAgent's DescribeInstanceInformation returns AgentVersion; the state
machine fails at once with a message naming the version found and the minimum, and releases the
instance. CheckAgent's ResultSelector parses the version and AgentOnline? compares it, so the check
costs no transition (issue 10: a successful build takes at most 12). The local stack reports the
version set per image (`stack.set_agent`)."""

from __future__ import annotations

import json

import pytest

from tests.flow.test_build_flow import SUCCESS_PATH, assert_released, failure
from tests.flow.test_choice_rules import STATES, choose, matches

MINIMUM = "3.3.2746.0"


AGENT = {"Attempt": 1, "Attempts": 5, "Doubled": 2, "MaxDelay": 4}


def parsed(version: str, online: int = 1) -> dict:
    """What CheckAgent's ResultSelector computes (major, minor, build as numbers)."""
    major, minor, build = (int(p) for p in version.split(".")[:3])
    status = {"Online": online, "Error": "", "Cause": "", "Found": version, "Major": major, "Minor": minor, "Build": build}
    return {"Run": {"AgentStatus": status, "Agent": AGENT}}


@pytest.mark.parametrize("version, recent_enough", [
    (MINIMUM, True), ("3.3.2746.1", True), ("3.3.2747.0", True), ("3.3.10000.0", True), ("3.4.0.0", True),
    ("3.10.0.0", True), ("4.0.0.0", True), ("10.0.0.0", True),
    ("3.3.2745.0", False), ("3.3.987.0", False), ("3.2.9999.0", False), ("2.3.9999.0", False), ("3.0.1124.0", False),
])
def test_versions_compare_as_numbers(version, recent_enough):
    assert choose("AgentOnline?", parsed(version)) == ("RunBuild" if recent_enough else "AgentTooOld")


def test_the_version_is_checked_only_once_the_agent_is_online():
    # Not online: CheckAgent's padding (or AgentOffline) gives 0.0.0, which must mean "wait", not "too old".
    assert choose("AgentOnline?", parsed("0.0.0.0", online=0)) == "AgentBackoff"
    assert choose("AgentOnline?", parsed("3.3.2746.0", online=0)) == "AgentBackoff"
    offline = dict(STATES["AgentOffline"]["Parameters"], **{"Error.$": None, "Cause.$": None})
    assert {k: offline[k] for k in ("Online", "Found", "Major", "Minor", "Build")} == {
        "Online": 0, "Found": "none", "Major": 0, "Minor": 0, "Build": 0}
    assert STATES["AgentTooOld"]["Next"] == "FindCommand"  # then Release? and Release
    assert "AgentVersion" not in STATES and "AgentRecentEnough?" not in STATES


def test_agent_below_the_minimum_fails_at_once_naming_the_version_and_releases(flow):
    ami = flow.linux_amis[1]
    d = flow.run_with_agent(ami, "version=3.2.582.0", Command="echo should-not-run")
    error, cause = failure(d)
    assert error == "AgentTooOld" and cause["Stage"] == "agent", cause
    assert "is version 3.2.582.0" in cause["Cause"] and f"needs SSM Agent {MINIMUM} or later" in cause["Cause"]
    names = flow.transitions(d["executionArn"])
    assert names.count("CheckAgent") == 1  # at once: no further checks, no waiting for a timeout
    assert "RunBuild" not in names
    assert_released(flow, d["executionArn"])
    (instance,) = flow.instances_of(d["executionArn"])
    assert all(i["InstanceId"] != instance["InstanceId"] for i in flow.stack.agent_invocations())


def test_agent_at_a_higher_minor_version_builds(flow):
    ami = flow.linux_amis[2]
    d = flow.run_with_agent(ami, "version=3.10.0.0", Command="true")  # lexically below 3.3, numerically above
    assert d["status"] == "SUCCEEDED", d
    assert flow.transitions(d["executionArn"]) == SUCCESS_PATH
    assert len(SUCCESS_PATH) <= 12
    assert_released(flow, d["executionArn"])


def test_the_version_rule_is_an_or_of_numeric_comparisons():
    rule = STATES["AgentOnline?"]["Choices"][0]
    assert rule["Next"] == "RunBuild" and "Or" in rule["And"][1]
    assert not matches(rule, parsed("3.3.2745.9"))


def test_agent_not_online_at_first_then_recent_builds(flow):
    # The first checks see an empty InstanceInformationList: the ResultSelector must not fail on it.
    ami = flow.linux_amis[2]
    d = flow.run_with_agent(ami, "version=3.3.2746.0,delay=2.5", Command="true")
    assert d["status"] == "SUCCEEDED", d
    names = flow.transitions(d["executionArn"])
    assert names.count("CheckAgent") >= 2 and "AgentOffline" not in names, names  # answered, with an empty list
    statuses = [json.loads(e["stateExitedEventDetails"]["output"])["Run"]["AgentStatus"] for e in flow.history(d["executionArn"])
                if e["type"] == "TaskStateExited" and e["stateExitedEventDetails"]["name"] == "CheckAgent"]
    assert statuses[0] == {"Online": 0, "Error": "", "Cause": "", "Found": "none", "Major": 0, "Minor": 0, "Build": 0}
    assert statuses[-1] == {"Online": 1, "Error": "", "Cause": "", "Found": "3.3.2746.0", "Major": 3, "Minor": 3, "Build": 2746}
    assert_released(flow, d["executionArn"])
