"""`tencent`: SMS through Tencent Cloud SMS, both directions: sending, batches and lookup
(send.py), status and reply callbacks on a secret path token (webhooks.py), Tencent's codes
(codes.py) and settings (settings.py)."""

from .send import TencentProvider
from .settings import TencentSettings
from .webhooks import TencentWebhooks

__all__ = ["TencentProvider", "TencentSettings", "TencentWebhooks"]
