"""The public page `/query` where a resident looks up the notices sent to them (selfquery.py).

GET shows the form; the 身份证号 and 姓名 travel only in a POST body, never in a URL (and `serve`
keeps no access log). The form is a public POST, so it carries a CSRF token: an HMAC of the
time it was issued and of a random nonce that also sits in a SameSite=Strict cookie of this path
(double submit, nothing kept on the server). Every POST answer is held to the same minimum time
(MIN_SECONDS) and a wrong pair, an unknown ID and a resident without notices get the same page
("nothing found"), whose body differs only by the fresh form token; with `[selfquery] otp` the
first step answers every pair with the same "a code was sent, if the details match" page, and
the SMS goes out after the answer, so a provider's delay tells nothing either. Each
query counts against the client address and the ID number (query_attempts, shared by all
workers); over either limit the answer is 429 "please try later". Each query is audited
(`selfquery.asked`: the ID's keyed hash, the outcome).
"""

from __future__ import annotations

import asyncio
import hmac
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import jinja2
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from .app import App
from .console.security import HEADERS
from .selfquery import (
    CodeCheck,
    Outcome,
    QueryKeys,
    Resident,
    SentNotice,
    check_code,
    count_attempts,
    find_resident,
    issue_code,
    new_token,
    normalise_id,
    notices_of,
    query_keys,
    record_query,
    send_code,
)

PATH = "/query"
MIN_SECONDS = 0.2  # every answer to a POST takes at least this long (a lookup takes a few ms)
MAX_BODY = 4096  # the form is a few dozen bytes
TOKEN_SECONDS = 3600  # a form older than this is refused (the resident reloads the page)
COOKIE = "notifier_query"
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
LIMITS = {"id_number": 32, "name": 64, "code": 12, "token": 64, "csrf": 128}


class SelfQueryPage:
    """GET and POST of /query (web.py routes them before the console's mount)."""

    def __init__(self, app: App, env: jinja2.Environment) -> None:
        self.app, self.env = app, env
        self.settings = app.config.selfquery
        self.keys: QueryKeys | None = query_keys(app.config) if self.settings.enabled else None
        self.secure = app.config.serve.public_url.startswith("https://")

    def endpoints(self) -> dict[str, Callable[[Request], Awaitable[Response]]]:
        return {PATH: self.endpoint}

    async def endpoint(self, request: Request) -> Response:
        keys = self.keys
        if keys is None:
            return self._page(request, "unavailable", "", status=404)
        nonce = request.cookies.get(COOKIE, "")
        if not _NONCE.fullmatch(nonce):
            nonce = ""
        if request.method != "POST":
            return self._page(request, "form", nonce)
        started = time.monotonic()
        form = await _form(request)
        if form is None or not nonce or not self._csrf_ok(keys, nonce, form.get("csrf", "")):
            return await _held(started, self._page(request, "expired", nonce, status=403))
        address = request.client.host if request.client else ""
        if "token" in form:
            return await _held(started, await self._second_step(request, keys, nonce, form, address))
        return await _held(started, await self._first_step(request, keys, nonce, form, address))

    async def _first_step(
        self, request: Request, keys: QueryKeys, nonce: str, form: dict[str, str], address: str
    ) -> Response:
        s, app = self.settings, self.app
        id_number, name = form.get("id_number", ""), form.get("name", "")
        subject, where = keys.subject(id_number), keys.address(address)
        limited = await self._over_limit(keys, address, normalise_id(id_number))
        if limited:
            await run_in_threadpool(record_query, app, subject, Outcome.LIMITED, address=where, by=limited)
            return self._page(request, "limited", nonce, status=429)
        resident = await run_in_threadpool(find_resident, app, id_number, name)
        if s.otp:
            token = new_token()
            page = self._page(request, "code", nonce, token=token)
            if resident is None:
                await run_in_threadpool(record_query, app, subject, Outcome.UNMATCHED, address=where)
                return page
            code = await run_in_threadpool(issue_code, app, keys, token, resident, subject, s.otp_minutes)
            # sent after the answer: how long a provider takes must not tell a match from a miss
            page.background = BackgroundTask(self._send_code, resident, code, subject, where)
            return page
        notices = await run_in_threadpool(notices_of, app, resident.resident_id) if resident else []
        outcome = Outcome.MATCHED if resident else Outcome.UNMATCHED
        extra = {"notices": len(notices)} if resident else {}
        await run_in_threadpool(record_query, app, subject, outcome, address=where, **extra)
        return self._listed(request, nonce, notices)

    async def _send_code(self, resident: Resident, code: str, subject: str, where: str) -> None:
        sent = await send_code(self.app, resident, code, self.settings.otp_minutes)
        outcome = Outcome.OTP_SENT if sent else Outcome.OTP_FAILED
        await run_in_threadpool(record_query, self.app, subject, outcome, address=where)

    async def _second_step(
        self, request: Request, keys: QueryKeys, nonce: str, form: dict[str, str], address: str
    ) -> Response:
        app, token = self.app, form.get("token", "")
        where = keys.address(address)
        if await self._over_limit(keys, address, None):
            await run_in_threadpool(record_query, app, "token", Outcome.LIMITED, address=where, by="address")
            return self._page(request, "limited", nonce, status=429)
        got: CodeCheck = await run_in_threadpool(
            check_code, app, keys, token, form.get("code", ""), self.settings.otp_attempts
        )
        subject = got.subject or "token"
        if got.resident_id is None:
            await run_in_threadpool(record_query, app, subject, Outcome.OTP_WRONG, address=where)
            return self._page(request, "code", nonce, token=token, wrong=True)
        notices = await run_in_threadpool(notices_of, app, got.resident_id)
        await run_in_threadpool(
            record_query, app, subject, Outcome.MATCHED, address=where, notices=len(notices), otp=True
        )
        return self._listed(request, nonce, notices)

    async def _over_limit(self, keys: QueryKeys, address: str, id_number: str | None) -> str:
        """Count this query; which limit it is over ("address", "id") or ""."""
        s = self.settings
        names = [("address", keys.mac("limit-address", address), s.attempts_per_address)]
        if id_number is not None:
            names.append(("id", keys.mac("limit-id", id_number), s.attempts_per_id))
        counts = await run_in_threadpool(
            count_attempts, self.app, [k for _, k, _ in names], s.window_minutes * 60
        )
        return next((n for (n, _, limit), c in zip(names, counts, strict=True) if c > limit), "")

    def _listed(self, request: Request, nonce: str, notices: list[SentNotice]) -> Response:
        """The list, or for no notice the one page a wrong pair also gets."""
        if not notices:
            return self._page(request, "none", nonce)
        return self._page(request, "list", nonce, notices=notices)

    # -- CSRF: HMAC(issued time, cookie nonce) ------------------------------------------------------
    def _csrf(self, keys: QueryKeys, nonce: str) -> str:
        issued = str(int(time.time()))
        return f"{issued}.{keys.mac('csrf', f'{nonce}|{issued}')}"

    def _csrf_ok(self, keys: QueryKeys, nonce: str, sent: str) -> bool:
        issued, _, mac = sent.partition(".")
        if not issued.isdigit() or not 0 <= time.time() - int(issued) <= TOKEN_SECONDS:
            return False
        return hmac.compare_digest(mac, keys.mac("csrf", f"{nonce}|{issued}"))

    def _page(self, request: Request, state: str, nonce: str, status: int = 200, **ctx: Any) -> Response:
        fresh = nonce or secrets.token_urlsafe(24)
        defaults: dict[str, Any] = {"notices": [], "token": "", "wrong": False}
        html = self.env.get_template("selfquery.html").render(
            request=request,
            account=None,
            menu=[],
            state=state,
            csrf=self._csrf(self.keys, fresh) if self.keys else "",
            otp=self.settings.otp,
            minutes=self.settings.otp_minutes,
            contact_phone=self.app.config.verification.contact_phone,
            **(defaults | ctx),
        )
        response = HTMLResponse(html, status_code=status, headers=HEADERS)
        if self.keys is not None and fresh != nonce:
            response.set_cookie(
                COOKIE,
                fresh,
                max_age=TOKEN_SECONDS,
                path=PATH,
                httponly=True,
                samesite="strict",
                secure=self.secure,
            )
        return response


async def _held(started: float, response: Response) -> Response:
    await asyncio.sleep(max(0.0, MIN_SECONDS - (time.monotonic() - started)))
    return response


async def _form(request: Request) -> dict[str, str] | None:
    """The urlencoded form, each value cut to its bound; None for a body larger than MAX_BODY."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return None
    try:
        fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=len(LIMITS) + 2)
    except ValueError:  # more fields than the form has
        return None
    return {k: v[0][:limit] for k, limit in LIMITS.items() if (v := fields.get(k))}
