"""`aliyun`: SMS through Aliyun SMS (dysmsapi 2017-05-25) with registered templates, both
directions: sending, batches and lookup (send.py), receipt and reply pushes (webhooks.py),
Aliyun's codes (codes.py) and settings (settings.py)."""

from .send import AliyunProvider
from .settings import AliyunSettings
from .webhooks import AliyunWebhooks

__all__ = ["AliyunProvider", "AliyunSettings", "AliyunWebhooks"]
