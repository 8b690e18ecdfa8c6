"""The SSM Agent version check (issue 12, item 15): an agent older than 3.3.2746.0 (the first that
runs documents with interpolationType ENV_VAR) would never run the build, which would only end
as a heartbeat timeout. CheckAgent's DescribeInstanceInformation returns AgentVersion; the state
machine fails at once with a message naming the version found and the minimum, and releases the
instance. The local stack reports the version set per image (`stack.set_agent`)."""

from __future__ import annotations

import pytest

from tests.flow.test_build_flow import SUCCESS_PATH, assert_released, failure
from tests.flow.test_choice_rules import STATES, choose, matches

MINIMUM = "3.3.2746.0"


def parsed(version: str) -> dict:
    """What the AgentVersion state computes (major, minor, build as numbers)."""
    major, minor, build = (int(p) for p in version.split(".")[:3])
    return {"Run": {"AgentVersion": {"Found": version, "Major": major, "Minor": minor, "Build": build}}}


@pytest.mark.parametrize("version, recent_enough", [
    (MINIMUM, True), ("3.3.2746.1", True), ("3.3.2747.0", True), ("3.3.10000.0", True), ("3.4.0.0", True),
    ("3.10.0.0", True), ("4.0.0.0", True), ("10.0.0.0", True),
    ("3.3.2745.0", False), ("3.3.987.0", False), ("3.2.9999.0", False), ("2.3.9999.0", False), ("3.0.1124.0", False),
])
def test_versions_compare_as_numbers(version, recent_enough):
    assert choose("AgentRecentEnough?", parsed(version)) == ("RunBuild" if recent_enough else "AgentTooOld")


def test_the_version_is_checked_only_once_the_agent_is_online():
    online = {"Run": {"AgentStatus": {"Online": 1}, "Agent": {"Attempt": 1, "Attempts": 5, "Doubled": 2, "MaxDelay": 4}}}
    assert choose("AgentOnline?", online) == "AgentVersion"
    assert STATES["AgentVersion"]["Next"] == "AgentRecentEnough?"
    assert STATES["AgentTooOld"]["Next"] == "Release"


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
    assert "AgentVersion" in SUCCESS_PATH and "AgentRecentEnough?" in SUCCESS_PATH
    assert_released(flow, d["executionArn"])


def test_the_version_rule_is_an_or_of_numeric_comparisons():
    rule = STATES["AgentRecentEnough?"]["Choices"][0]
    assert rule["Next"] == "RunBuild" and "Or" in rule
    assert not matches(rule, parsed("3.3.2745.9"))
