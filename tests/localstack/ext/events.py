"""Server-side event bus: the local stand-in for the AWS services' EventBridge emitters.

Emitters (the CodePipeline and Step Functions extensions) call `publish()` with an event
in the exact EventBridge envelope. Consumers:
  * in-process callbacks (`BUS.subscribers`, called synchronously, must not block);
  * the router in the LocalStack client, which long-polls `GET /_ec2build/events`.
Events are kept in memory for the life of the server (sequence numbers start at 1).
"""

from __future__ import annotations

import datetime
import threading
import uuid
from typing import Any, Callable

ACCOUNT_ID = "123456789012"


def utc_now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def envelope(
    source: str,
    detail_type: str,
    detail: dict[str, Any],
    resources: list[str],
    region: str,
    account: str = ACCOUNT_ID,
) -> dict[str, Any]:
    """The EventBridge event envelope, as AWS services deliver it to targets."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": account,
        "time": utc_now_iso(),
        "region": region,
        "resources": resources,
        "detail": detail,
    }


class EventBus:
    def __init__(self) -> None:
        self._events: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self.subscribers: list[Callable[[dict[str, Any]], None]] = []

    def publish(self, event: dict[str, Any]) -> int:
        with self._cond:
            self._events.append(event)
            seq = len(self._events)
            self._cond.notify_all()
        for callback in list(self.subscribers):
            try:
                callback(event)
            except Exception:  # a broken subscriber must not break the emitting API call
                import traceback

                traceback.print_exc()
        return seq

    def read(self, after: int, wait: float) -> tuple[list[dict[str, Any]], int]:
        """Events with sequence number > after; blocks up to `wait` seconds for one."""
        with self._cond:
            if len(self._events) <= after and wait > 0:
                self._cond.wait_for(lambda: len(self._events) > after, timeout=wait)
            events = self._events[after:]
            return events, len(self._events)


BUS = EventBus()
