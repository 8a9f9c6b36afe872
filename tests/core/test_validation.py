"""Bad input is refused with a clear error naming what was wrong, never coerced.

Each row: what a caller passes, the error class, and words the message must contain.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import phantom_notebook as pn

Call = Callable[[pn.MessageQueue], Any]

CASES: list[tuple[str, Call, type[Exception], str]] = [
    ("NaN in a payload", lambda mq: mq.publish("v", "t", {"score": math.nan}),
     pn.PayloadError, "payload['score'] is not a finite number"),
    ("Infinity deep in a payload", lambda mq: mq.publish("v", "t", {"a": [1, -math.inf]}),
     pn.PayloadError, "payload['a'][1] is not a finite number"),
    ("non-string payload keys", lambda mq: mq.publish("v", "t", {1: "a"}),
     pn.PayloadError, "not serializable exactly"),
    ("a non-string header value", lambda mq: mq.publish("v", "t", {}, headers={"n": 1}),
     pn.ValidationError, "keys and values must be strings"),
    ("a reserved pn-* header", lambda mq: mq.publish(
        "v", "t", {}, headers={"pn-first-failure-ms": "not-a-number"}),
     pn.ValidationError, "pn-* headers are reserved"),
    ("2 MB of headers on a 1 MiB limit", lambda mq: mq.publish(
        "v", "t", {}, headers={"h": "x" * 2_000_000}), pn.PayloadError, "over the limit"),
    ("ttl_s NaN", lambda mq: mq.publish("v", "t", {}, ttl_s=math.nan),
     pn.ValidationError, "ttl_s must be a positive finite number"),
    ("ttl_s -1", lambda mq: mq.publish("v", "t", {}, ttl_s=-1),
     pn.ValidationError, "ttl_s must be a positive finite number"),
    ("delay inf", lambda mq: mq.publish("v", "t", {}, delay=math.inf),
     pn.ValidationError, "delay must be a finite number"),
    ("delay NaN", lambda mq: mq.publish("v", "t", {}, delay=math.nan),
     pn.ValidationError, "delay must be a finite number"),
    ("a naive deliver_at", lambda mq: mq.publish("v", "t", {}, deliver_at=datetime(2030, 1, 1)),
     pn.ValidationError, "timezone-aware"),
    ("wait_s NaN", lambda mq: mq.publish("v", "t", {}, wait_s=math.nan),
     pn.ValidationError, "wait_s must be a finite number"),
    ("a 1 MB dedup key", lambda mq: mq.publish("v", "t", {}, dedup_key="k" * 1_000_000),
     pn.ValidationError, "dedup_key must be a string of 1-512"),
    ("a 100 KB message type", lambda mq: mq.publish("v", "t" * 100_000, {}),
     pn.ValidationError, "message type must be 1-200 characters"),
    ("a message type with a newline", lambda mq: mq.publish("v", "ioc.x\n", {}),
     pn.ValidationError, "message type"),
    ("a queue name ending in a newline", lambda mq: mq.publish("ioc-x\n", "t", {}),
     pn.ValidationError, "invalid queue name"),
    ("subscribe without a type pattern", lambda mq: mq.subscribe("v", None, print),  # type: ignore[arg-type]
     pn.ValidationError, "type_pattern must be a glob"),
    ("a handler timeout of 0", lambda mq: mq.subscribe("v", "*", print, handler_timeout_s=0),
     pn.ValidationError, "handler_timeout_s must be a positive number"),
]


@pytest.mark.parametrize(("what", "call", "error", "words"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_with_a_clear_error(mq: pn.MessageQueue, what: str, call: Call,
                                                 error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words.replace("[", r"\[").replace("]", r"\]")
                       .replace("*", r"\*")):
        call(mq)
    assert mq.stats("v")[0].depth == 0 if "v" in mq.queues() else True  # nothing written


SETTINGS: list[tuple[str, dict[str, Any], str]] = [
    ("retry.multiplier NaN", {"queue_defaults": {"retry": {"multiplier": "nan"}}},
     "queue_defaults.retry.multiplier"),
    ("retry.initial_delay_s inf", {"queue_defaults": {"retry": {"initial_delay_s": "inf"}}},
     "queue_defaults.retry.initial_delay_s"),
    ("a non-numeric database in the URL", {"redis": {"url": "redis://127.0.0.1/abc"}},
     "redis.url"),
    ("a breaker rate above 1", {"queue_defaults": {"circuit_breaker": {
        "failure_rate_threshold": 1.5}}}, "failure_rate_threshold"),
    ("replay_window_s negative", {"queue_defaults": {"replay_window_s": -1}},
     "replay_window_s"),
]


@pytest.mark.parametrize(("what", "data", "field"), SETTINGS, ids=[s[0] for s in SETTINGS])
def test_bad_settings_are_refused_naming_the_field(what: str, data: dict[str, Any],
                                                   field: str) -> None:
    with pytest.raises(pn.ConfigError, match=field.replace(".", r"\.")):
        pn.Settings.from_dict(data)


def test_stats_of_one_queue_name_is_that_queue_not_its_characters(mq: pn.MessageQueue) -> None:
    mq.declare("ioc-feed")
    assert [s.queue for s in mq.stats("ioc-feed")] == ["ioc-feed"]


def test_a_deliver_at_message_is_never_due_before_its_millisecond(mq: pn.MessageQueue) -> None:
    at = datetime.now(UTC) + timedelta(seconds=30, microseconds=500)
    mq.declare("later", kind="delayed")
    mq.publish("later", "t", {}, deliver_at=at)
    [(_, due)] = mq.client.zrange(mq.queue_keys("later").delayed, 0, 0, withscores=True)
    assert due >= at.timestamp() * 1000  # rounded up, never down
