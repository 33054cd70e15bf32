"""`smtp`: e-mail through any SMTP server, over a small pool of reused connections."""

from .send import SmtpProvider
from .settings import SmtpSettings

__all__ = ["SmtpProvider", "SmtpSettings"]
