"""What follows a send that did not go through: a pure function of the error, the attempts
made, the row's age and the [sending] settings (no database, no clock, no global random).

  NotSent         back to `pending` at once, the attempt given back: nothing was handed over
  AccountError    back to `pending` at once, the attempt given back: the provider's account
                  cannot send for anyone (it is paused), the next provider takes the message
  AmbiguousError  `unknown`: maybe accepted, never resent blindly; reconciliation looks it up
  TransientError  `pending` again after a jittered exponential backoff, while attempts are left
                  and the retry deadline (counted from the row's creation) has not passed;
                  then `failed`, with a channel fallback
  PermanentError  `failed`, with a channel fallback (as is any other ProviderError)
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..config import SendingSettings
from ..errors import AccountError, AmbiguousError, NotSent, ProviderError, TransientError
from ..status import DeliveryStatus

Uniform = Callable[[float, float], float]
"""random.uniform's signature: the jitter source, passed in so tests can fix it."""


@dataclass(frozen=True)
class Decision:
    status: DeliveryStatus
    retry_at: datetime | None = None
    attempt_used: bool = True  # False: the claim's count of this attempt is taken back
    fall_back: bool = False  # try the rule's next channel


def backoff(base: float, attempt: int, rand: Uniform = random.uniform) -> float:
    """Seconds before retry number `attempt` (1, 2, ...): base * 2^(attempt-1), jittered ±50%."""
    return base * 2.0 ** (attempt - 1) * rand(0.5, 1.5)


def decide(
    error: ProviderError | NotSent,
    attempts: int,
    created_at: datetime,
    now: datetime,
    settings: SendingSettings,
    rand: Uniform = random.uniform,
) -> Decision:
    """The next status of a delivery whose attempt number `attempts` ended in `error`."""
    if isinstance(error, (NotSent, AccountError)):
        return Decision(DeliveryStatus.PENDING, attempt_used=False)
    if isinstance(error, AmbiguousError):
        return Decision(DeliveryStatus.UNKNOWN)
    if (
        isinstance(error, TransientError)
        and attempts < settings.max_attempts
        and now - created_at < timedelta(seconds=settings.retry_deadline_seconds)
    ):
        delay = backoff(settings.retry_base_seconds, attempts, rand)
        return Decision(DeliveryStatus.PENDING, retry_at=now + timedelta(seconds=delay))
    return Decision(DeliveryStatus.FAILED, fall_back=True)
