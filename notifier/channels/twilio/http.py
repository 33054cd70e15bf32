"""The HTTP client under the official twilio package: one aiohttp session, our timeout, quiet logs."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlsplit

from twilio.http.async_http_client import AsyncTwilioHttpClient


class HttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]  # twilio has no type hints
    """AsyncTwilioHttpClient stores `timeout` but hands aiohttp the per-request value, which
    `create_async` leaves at None, and None there means no timeout at all: apply ours. Basic
    auth goes in as a header because aiohttp deprecates its `auth=` parameter.

    The stock client logs every request at INFO with its query string and parameters (`To=`
    when listing a resident's messages); here only the method and the path are logged, at DEBUG."""

    def log_request(self, kwargs: dict[str, Any]) -> None:
        self.logger.debug("Twilio API %s %s", kwargs["method"], urlsplit(str(kwargs["url"])).path)

    def log_response(self, status_code: int, response: Any) -> None:
        self.logger.debug("Twilio API response %s", status_code)

    async def request(
        self,
        method: str,
        url: str,
        *args: Any,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        headers = dict(headers or {})
        if auth is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode(
                "ascii"
            )
        return await super().request(
            method, url, *args, headers=headers, timeout=timeout or self.timeout, **kwargs
        )
