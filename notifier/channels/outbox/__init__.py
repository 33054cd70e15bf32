"""`outbox`: each message written to a file of its own. For demos, tests and manual sending."""

from .send import OutboxProvider
from .settings import OutboxSettings

__all__ = ["OutboxProvider", "OutboxSettings"]
