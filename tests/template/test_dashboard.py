"""The template's CloudWatch dashboard shows exactly the metrics the functions emit: the names
declared in crates/lambdas/src/metrics.rs (KEEPER_METRICS, BUILD_DURATION_METRICS,
BUILDS_FINISHED_METRIC, which the Rust tests check against the EMF lines really written), in their
namespace, with the dimensions each is written with."""

from __future__ import annotations

import json
import re

from template_helpers import ROOT, load_template

METRICS_RS = (ROOT / "crates" / "lambdas" / "src" / "metrics.rs").read_text()


def _const(name: str) -> list[str]:
    """The string values of a `pub const NAME: ... = ...;` of metrics.rs."""
    m = re.search(rf"pub const {name}: [^=]+= (.*?);", METRICS_RS, re.S)
    assert m, f"{name} is not declared in metrics.rs"
    return re.findall(r'"([^"]+)"', m.group(1))


NAMESPACE = _const("NAMESPACE")[0]
KEEPER = set(_const("KEEPER_METRICS"))
DURATIONS = set(_const("BUILD_DURATION_METRICS"))
FINISHED = set(_const("BUILDS_FINISHED_METRIC"))
STACK, RESULT, MARKET, POOL = (_const(n)[0] for n in ("STACK_DIMENSION", "RESULT_DIMENSION", "MARKET_DIMENSION", "POOL_DIMENSION"))


def _dashboard_metrics() -> list[list]:
    body = load_template()["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    body = body.replace("${AWS::StackName}", "my-stack").replace("${AWS::Region}", "eu-west-1")
    assert "${" not in body, "a substitution the test does not know"
    widgets = json.loads(body)["widgets"]
    assert widgets
    return [m for w in widgets for m in w["properties"]["metrics"]]


def test_the_dashboard_shows_every_emitted_metric_and_nothing_else():
    metrics = _dashboard_metrics()
    assert all(m[0] == NAMESPACE for m in metrics), "a metric outside the stack's namespace"
    shown = {m[1] for m in metrics}
    assert shown == KEEPER | DURATIONS | FINISHED


def test_each_metric_has_the_dimensions_it_is_written_with():
    for m in _dashboard_metrics():
        dims = [x for x in m[2:] if isinstance(x, str)]
        names = dims[0::2]
        assert dict(zip(names, dims[1::2]))[STACK] == "my-stack", m
        if m[1] in KEEPER:
            expected = [STACK]
        elif m[1] in DURATIONS:
            expected = [STACK, MARKET, POOL]
        else:
            expected = [STACK, RESULT]
        assert sorted(names) == sorted(expected), m
