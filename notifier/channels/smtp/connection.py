"""One SMTP connection that knows whether the message itself was written.

aiosmtplib's client with DATA in two steps: until the message and its final "." are written, a
lost connection cannot have delivered anything (transient); after, the server may have taken it
(ambiguous). That one bit is what lets the provider tell the two apart.
"""

from __future__ import annotations

import re
from typing import Any

import aiosmtplib
from aiosmtplib import SMTPResponse, SMTPStatus

_LINE_END = re.compile(rb"\r\n|\n|\r(?!\n)")
_LEADING_DOT = re.compile(rb"(?m)^\.")


class Connection(aiosmtplib.SMTP):
    message_written = False

    async def data(
        self, message: str | bytes, /, *, timeout: Any = aiosmtplib.typing.Default.token
    ) -> SMTPResponse:
        start = await self.execute_command(b"DATA", timeout=timeout)
        if start.code != SMTPStatus.start_input:
            raise aiosmtplib.SMTPDataError(start.code, start.message)
        if self.protocol is None:
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        raw = _LINE_END.sub(b"\r\n", message.encode("ascii") if isinstance(message, str) else message)
        raw += b"" if raw.endswith(b"\r\n") else b"\r\n"
        # No await between writing and reading the answer: it cannot arrive unseen.
        self.protocol.write(_LEADING_DOT.sub(b"..", raw) + b".\r\n")
        self.message_written = True
        try:
            response = await self.protocol.read_response(
                timeout=self.timeout if timeout is aiosmtplib.typing.Default.token else timeout
            )
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError):
            self.close()
            raise
        if response.code != SMTPStatus.completed:
            raise aiosmtplib.SMTPDataError(response.code, response.message)
        return response
