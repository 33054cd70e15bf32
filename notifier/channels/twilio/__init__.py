"""`twilio`: SMS through Twilio, both directions: sending and lookup (send.py), signed status
callbacks and inbound replies (webhooks.py), Twilio's codes (codes.py) and settings (settings.py)."""

from .send import TwilioProvider
from .settings import TwilioSettings
from .webhooks import TwilioWebhooks

__all__ = ["TwilioProvider", "TwilioSettings", "TwilioWebhooks"]
