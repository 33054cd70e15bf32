"""The retry / backoff / deadline decision, without a database: each typed error leads to its
own next status, and retries stop at max_attempts and at the deadline."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from notifier.config import SendingSettings
from notifier.delivery.decide import Decision, backoff, decide
from notifier.errors import AmbiguousError, LeaseLapsed, PermanentError, ProviderError, TransientError
from notifier.status import DeliveryStatus as S

NOW = datetime(2026, 4, 1, 4, 0, tzinfo=timezone.utc)
SETTINGS = SendingSettings(
    batch_size=10,
    max_attempts=3,
    retry_base_seconds=10.0,
    stale_seconds=60.0,
    settle_seconds=5.0,
    failover_after=3,
    failover_cooldown_seconds=60.0,
    retry_deadline_seconds=3600.0,
)


def middle(low: float, high: float) -> float:
    return (low + high) / 2  # no jitter: exactly base * 2^(attempt-1)


FRESH = NOW - timedelta(minutes=1)
OLD = NOW - timedelta(hours=2)  # past the one-hour deadline


@pytest.mark.parametrize(
    "error, attempts, created_at, expected",
    [
        (TransientError("429", "p", code="429"), 1, FRESH, Decision(S.PENDING, NOW + timedelta(seconds=10))),
        (TransientError("503", "p", code="503"), 2, FRESH, Decision(S.PENDING, NOW + timedelta(seconds=20))),
        # the third attempt was the last one allowed: failed, and the next channel is tried
        (TransientError("503", "p"), 3, FRESH, Decision(S.FAILED, fall_back=True)),
        (TransientError("503", "p"), 1, OLD, Decision(S.FAILED, fall_back=True)),  # past the deadline
        (PermanentError("invalid number", "p", code="21211"), 1, FRESH, Decision(S.FAILED, fall_back=True)),
        (ProviderError("an untyped refusal", "p"), 1, FRESH, Decision(S.FAILED, fall_back=True)),
        # maybe accepted: never resent blindly, whatever the attempts and the age
        (AmbiguousError("timeout", "p", code="timeout"), 1, FRESH, Decision(S.UNKNOWN)),
        (AmbiguousError("timeout", "p"), 3, OLD, Decision(S.UNKNOWN)),
        # nothing was handed over: back at once, and the attempt does not count
        (LeaseLapsed("lease"), 1, FRESH, Decision(S.PENDING, attempt_used=False)),
        (LeaseLapsed("lease"), 3, OLD, Decision(S.PENDING, attempt_used=False)),
    ],
)
def test_decide(
    error: ProviderError | LeaseLapsed, attempts: int, created_at: datetime, expected: Decision
) -> None:
    assert decide(error, attempts, created_at, NOW, SETTINGS, middle) == expected


@pytest.mark.parametrize(
    "attempt, jitter, seconds", [(1, 0.5, 5.0), (1, 1.5, 15.0), (2, 1.0, 20.0), (4, 1.0, 80.0)]
)
def test_backoff_doubles_and_is_jittered(attempt: int, jitter: float, seconds: float) -> None:
    assert backoff(10.0, attempt, lambda low, high: jitter) == seconds


def test_backoff_jitter_is_drawn_between_half_and_one_and_a_half() -> None:
    drawn: list[tuple[float, float]] = []
    backoff(10.0, 1, lambda low, high: drawn.append((low, high)) or low)
    assert drawn == [(0.5, 1.5)]
