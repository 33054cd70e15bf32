"""The public page `/v/{code}` (and the form `/v`) where a resident checks a notice is genuine.

It says only what a resident holding the notice already knows, so a leaked or guessed code
gives nothing away: the item, the department, the day it was sent, the channel and the
recipient masked (张*三, 138****0000), with the department's official phone beside it, never
anything more. Every answer costs the same — a malformed code is looked up as a code that
cannot exist, found and not found render the same template — and each response is held to the
same minimum time, so neither the page nor its timing tells a guesser which codes exist.
Unknown codes count against the client address (a LoginThrottle: after `failures_per_address`
within the window it must wait, answered 429). Nothing is logged: the code is the only thing in
the URL, and `serve` keeps no access log. Outside the console's login, before its mount.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jinja2
import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from .app import App
from .clock import as_utc
from .console.security import HEADERS
from .console.throttle import LoginThrottle
from .masking import mask_address, mask_email, mask_name_ends, mask_phone
from .retention import PURGED
from .runs.snapshot import RunSnapshot
from .status import Channel, DeliveryStatus
from .storage.schema import deliveries, run_messages, runs
from .verification import LENGTH, display, normalise

GENUINE = (DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.UNKNOWN)
"""Statuses of a delivery that may have reached the resident (unknown: perhaps)."""
NO_SUCH_CODE = "-" * LENGTH  # looked up for a malformed code: same query, never a match
MIN_SECONDS = 0.05  # every answer takes at least this long (a lookup takes a few ms)
MAX_TYPED = 64  # a longer "code" is not read at all


@dataclass(frozen=True)
class GenuineNotice:
    """What /v shows about a genuine notice: nothing a holder of the notice does not already see."""

    title: str
    department: str
    sent_on: str  # local date, YYYY-MM-DD
    channel: Channel
    recipient_name: str  # masked
    recipient: str  # masked phone, e-mail or address


def mask_recipient(channel: Channel, recipient: str) -> str:
    if channel is Channel.SMS:
        return mask_phone(recipient)
    if channel is Channel.EMAIL:
        return mask_email(recipient)
    return mask_address(recipient)


def find_notice(app: App, code: str) -> GenuineNotice | None:
    """The genuine notice carrying `code` (canonical form): one indexed query on
    run_messages.verify_code; the latest delivery that may have reached the resident."""
    m, d, r = run_messages, deliveries, runs
    query = (
        sa.select(
            m.c.channel,
            m.c.recipient,
            m.c.recipient_name,
            m.c.purged_at,
            d.c.sent_at,
            d.c.updated_at,
            r.c.snapshot,
        )
        .select_from(m.join(d, d.c.message_id == m.c.id).join(r, r.c.id == m.c.run_id))
        .where(m.c.verify_code == code, d.c.status.in_([s.value for s in GENUINE]))
        .order_by(d.c.id.desc())
        .limit(1)
    )
    with app.reader.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    item = RunSnapshot.from_json(row.snapshot).item
    channel = Channel(row.channel)
    when: datetime = as_utc(row.sent_at or row.updated_at)
    return GenuineNotice(
        title=item.title,
        department=item.department or "",
        sent_on=when.astimezone(app.config.timezone).date().isoformat(),
        channel=channel,
        # After its retention period the record still proves the notice genuine, without the contact.
        recipient_name=PURGED if row.purged_at is not None else mask_name_ends(row.recipient_name),
        recipient="" if row.purged_at is not None else mask_recipient(channel, row.recipient),
    )


class VerifyPage:
    """The two public routes and their throttle (one per web app, counted in this process)."""

    def __init__(self, app: App, env: jinja2.Environment) -> None:
        self.app, self.env = app, env
        settings = app.config.verification
        self.throttle = LoginThrottle(settings.failures_per_address, settings.window_minutes * 60)

    def endpoints(self) -> dict[str, Callable[[Request], Awaitable[Response]]]:
        """GET endpoints by path (web.py routes them, before the console's mount)."""
        return {"/v": self.form, "/v/{code}": self.check}

    async def form(self, request: Request) -> Response:
        typed = request.query_params.get("code")
        if typed is None:
            return self._page(request, "form")
        return await self._answer(request, typed)

    async def check(self, request: Request) -> Response:
        return await self._answer(request, request.path_params["code"])

    async def _answer(self, request: Request, typed: str) -> Response:
        started = time.monotonic()
        address = request.client.host if request.client else ""
        wait = self.throttle.wait(address)
        if wait > 0:
            return await self._held(
                started, self._page(request, "throttled", status=429, minutes=int(wait // 60) + 1)
            )
        code = normalise(typed) if len(typed) <= MAX_TYPED else None
        notice = await run_in_threadpool(find_notice, self.app, code or NO_SUCH_CODE)
        if notice is None:
            self.throttle.failed(address)
            return await self._held(started, self._page(request, "not_found"))
        return await self._held(
            started, self._page(request, "genuine", notice=notice, code=display(code or ""))
        )

    async def _held(self, started: float, response: Response) -> Response:
        await asyncio.sleep(max(0.0, MIN_SECONDS - (time.monotonic() - started)))
        return response

    def _page(self, request: Request, state: str, status: int = 200, **ctx: Any) -> Response:
        settings = self.app.config.verification
        defaults: dict[str, Any] = {"notice": None, "code": "", "minutes": 0}
        html = self.env.get_template("verify.html").render(
            request=request,
            account=None,
            menu=[],
            state=state,
            contact_phone=settings.contact_phone,
            **(defaults | ctx),
        )
        return HTMLResponse(html, status_code=status, headers=HEADERS)
