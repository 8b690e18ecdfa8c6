"""Event routing in place of EventBridge, running in the LocalStack (client) process.

The server publishes the events AWS services would send to EventBridge; the router
long-polls them (`GET /_ec2build/events`), matches them against rules (EventBridge event
patterns) and delivers them to targets: LambdaFunction objects (async invoke) or plain
callables (called on a worker thread). Scheduled rules emit "Scheduled Event" every N
seconds. Tests can lose events (`lose_next`) or fire a schedule at once (`fire`).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
import uuid
from typing import Any, Callable

ACCOUNT_ID = "123456789012"


def matches(pattern: dict[str, Any], event: Any) -> bool:
    """EventBridge pattern matching (exact values, prefix, anything-but, exists, numeric =)."""
    for key, expected in pattern.items():
        present = isinstance(event, dict) and key in event
        value = event.get(key) if isinstance(event, dict) else None
        if isinstance(expected, dict):
            if not present or not matches(expected, value):
                return False
            continue
        if not isinstance(expected, list):
            expected = [expected]
        values = value if isinstance(value, list) else [value]
        if not any(_match_one(rule, v, present) for rule in expected for v in (values or [None])):
            return False
    return True


def _match_one(rule: Any, value: Any, present: bool) -> bool:
    if isinstance(rule, dict):
        if "exists" in rule:
            return present == bool(rule["exists"])
        if not present:
            return False
        if "prefix" in rule:
            return isinstance(value, str) and value.startswith(rule["prefix"])
        if "anything-but" in rule:
            banned = rule["anything-but"]
            banned = banned if isinstance(banned, list) else [banned]
            return value not in banned
        if "numeric" in rule:
            ops = rule["numeric"]
            if not isinstance(value, (int, float)):
                return False
            checks = {"=": value.__eq__, "<": value.__lt__, "<=": value.__le__, ">": value.__gt__, ">=": value.__ge__}
            return all(checks[ops[i]](ops[i + 1]) for i in range(0, len(ops), 2))
        return False
    if not present:
        return False
    if isinstance(rule, (int, float)) and isinstance(value, (int, float)):
        return float(rule) == float(value)
    return rule == value


Target = Callable[[dict[str, Any]], Any]


class Rule:
    def __init__(self, name: str, targets: list[Target], pattern: dict[str, Any] | None = None, every: float | None = None, region: str = "us-east-1"):
        self.name = name
        self.pattern = pattern
        self.every = every
        self.targets = targets
        self.arn = f"arn:aws:events:{region}:{ACCOUNT_ID}:rule/{name}"
        self.enabled = True


class Router:
    def __init__(self, endpoint: str, region: str = "us-east-1"):
        self.endpoint = endpoint
        self.region = region
        self.rules: dict[str, Rule] = {}
        self.received: list[dict[str, Any]] = []  # every event the services published
        self.delivered: list[tuple[str, dict[str, Any]]] = []  # (rule name, event)
        self.lost: list[dict[str, Any]] = []
        self._lose: list[list[Any]] = []  # [pattern, remaining count]
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._after = 0
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ configuration
    def add_rule(self, name: str, pattern: dict[str, Any], *targets: Target) -> Rule:
        rule = Rule(name, list(targets), pattern=pattern, region=self.region)
        self.rules[name] = rule
        return rule

    def add_schedule(self, name: str, every_seconds: float, *targets: Target, start: bool = True) -> Rule:
        rule = Rule(name, list(targets), every=every_seconds, region=self.region)
        self.rules[name] = rule
        if start:
            t = threading.Thread(target=self._schedule_loop, args=(rule,), daemon=True, name=f"schedule-{name}")
            t.start()
            self._threads.append(t)
        return rule

    def remove_rule(self, name: str) -> None:
        rule = self.rules.pop(name, None)
        if rule:
            rule.enabled = False

    def lose_next(self, pattern: dict[str, Any] | None = None, count: int = 1) -> None:
        """Drop the next `count` events matching `pattern` (all events if None) before routing."""
        with self._lock:
            self._lose.append([pattern or {}, count])

    def fire(self, name: str) -> dict[str, Any]:
        """Emit one Scheduled Event of schedule rule `name` now."""
        rule = self.rules[name]
        event = self._scheduled_event(rule)
        self._deliver(rule, event)
        return event

    # ------------------------------------------------------------------ running
    def start(self) -> None:
        t = threading.Thread(target=self._poll_loop, daemon=True, name="event-router")
        t.start()
        self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        for rule in self.rules.values():
            rule.enabled = False

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            try:
                url = f"{self.endpoint}/_ec2build/events?after={self._after}&wait=5"
                with urllib.request.urlopen(url, timeout=15) as resp:
                    body = json.loads(resp.read())
            except Exception:
                if self._stop.wait(0.2):
                    return
                continue
            for event in body["events"]:
                self._route(event)
            self._after = body["last"]

    def _route(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.received.append(event)
            for entry in self._lose:
                if entry[1] > 0 and matches(entry[0], event):
                    entry[1] -= 1
                    self.lost.append(event)
                    self._lock.notify_all()
                    return
            self._lock.notify_all()
        for rule in list(self.rules.values()):
            if rule.enabled and rule.pattern is not None and matches(rule.pattern, event):
                self._deliver(rule, event)

    def _deliver(self, rule: Rule, event: dict[str, Any]) -> None:
        with self._lock:
            self.delivered.append((rule.name, event))
            self._lock.notify_all()
        for target in rule.targets:
            if hasattr(target, "invoke"):
                target.invoke(event)  # LambdaFunction: async, queued
            else:
                threading.Thread(target=_call_safely, args=(target, event), daemon=True).start()

    def _scheduled_event(self, rule: Rule) -> dict[str, Any]:
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": ACCOUNT_ID,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "region": self.region,
            "resources": [rule.arn],
            "detail": {},
        }

    def _schedule_loop(self, rule: Rule) -> None:
        while rule.enabled and not self._stop.wait(rule.every or 60):
            if rule.enabled:
                self._deliver(rule, self._scheduled_event(rule))

    # ------------------------------------------------------------------ observing
    def wait_for_event(self, pattern: dict[str, Any], timeout: float = 30, count: int = 1) -> list[dict[str, Any]]:
        """Wait until `count` received events match `pattern`; returns them."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                found = [e for e in self.received if matches(pattern, e)]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no {count} event(s) matching {pattern} in {timeout}s")
                self._lock.wait(min(remaining, 0.5))


def _call_safely(target: Target, event: dict[str, Any]) -> None:
    try:
        target(event)
    except Exception:
        import traceback

        traceback.print_exc()
