"""A Twilio-compatible Messages API on 127.0.0.1 for tests, so the official `twilio` client is
exercised over real HTTP without reaching Twilio.

It speaks the parts of /2010-04-01 the notifier uses: create (form-encoded, Basic auth), fetch
one, and list with To / From / DateSent filters and Twilio's paging shape. Each test configures
faults: a plan (queue) of answers for the next creates, per-number answers, or a seeded random
fault mode. Every accepted message is recorded, so tests can prove exactly-once delivery. A slow
answer records the message *before* waiting, like Twilio accepting a message whose answer never
arrives: the ambiguous case crash reconciliation has to settle. `send_status_callbacks` posts
signed receipts (X-Twilio-Signature) the way Twilio does, optionally duplicated or out of order.
Every create's arrival time is recorded (`arrivals`: how a provider counts its rate limit), and
`latency` adds seconds to every create's answer, as a provider far away takes.

Runs in the caller's event loop (`async with TwilioServer() as s`) or in a thread of its own
(`with TwilioServer() as s`) for code that runs its own loops, like `asyncio.run(dispatcher...)`.
"""

from __future__ import annotations

import asyncio
import operator
import random
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from twilio.request_validator import RequestValidator

from .aioserver import AioServer

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "test-auth-token-0123456789abcdef"
API = "/2010-04-01"
FINAL = ("delivered", "undelivered", "failed")


@dataclass(frozen=True)
class Fault:
    """One scripted answer to a create. `status` 2xx answers normally (after `delay`); `accept`
    records the message even though the answer is an error or too late for the client."""

    status: int
    code: int | None = None
    message: str = ""
    delay: float = 0.0
    accept: bool = False

    @classmethod
    def invalid_number(cls) -> Fault:
        return cls(400, 21211, "The 'To' number is not a valid phone number.")

    @classmethod
    def not_mobile(cls) -> Fault:
        return cls(400, 21614, "'To' number is not a valid mobile number")

    @classmethod
    def unsubscribed(cls) -> Fault:
        return cls(400, 21610, "Attempt to send to unsubscribed recipient")

    @classmethod
    def region_disabled(cls) -> Fault:
        return cls(
            400,
            21408,
            "Permission to send an SMS has not been enabled for the region indicated by the 'To' number",
        )

    @classmethod
    def unreachable(cls) -> Fault:
        return cls(400, 21612, "The 'To' phone number is not currently reachable via SMS")

    @classmethod
    def too_many_requests(cls) -> Fault:
        return cls(429, 20429, "Too Many Requests")

    @classmethod
    def server_error(cls) -> Fault:
        return cls(500, None, "Internal Server Error")

    @classmethod
    def slow(cls, delay: float) -> Fault:
        return cls(201, delay=delay, accept=True)


@dataclass
class Message:
    sid: str
    account_sid: str
    to: str
    from_: str | None
    messaging_service_sid: str | None
    body: str
    status_callback: str | None
    created: datetime
    num_segments: int
    status: str = "queued"
    error_code: int | None = None

    def resource(self) -> dict[str, Any]:
        when = format_datetime(self.created, usegmt=True).replace("GMT", "+0000")
        uri = f"{API}/Accounts/{self.account_sid}/Messages/{self.sid}"
        return {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": self.body,
            "date_created": when,
            "date_sent": when,
            "date_updated": when,
            "direction": "outbound-api",
            "error_code": self.error_code,
            "error_message": None,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": "0",
            "num_segments": str(self.num_segments),
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "to": self.to,
            "uri": uri + ".json",
            "subresource_uris": {"media": uri + "/Media.json", "feedback": uri + "/Feedback.json"},
        }


def segments(body: str) -> int:
    """Twilio's count: GSM-7 160/153 per segment, otherwise UCS-2 70/67 (Chinese is UCS-2)."""
    units, single, multi = (
        (len(body), 160, 153) if body.isascii() else (len(body.encode("utf-16-le")) // 2, 70, 67)
    )
    return 1 if units <= single else -(-units // multi)


def _error(status: int, code: int | None, message: str) -> web.Response:
    code = code or status
    return web.json_response(
        {
            "code": code,
            "message": message,
            "status": status,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
        },
        status=status,
    )


class TwilioServer(AioServer):
    name = "twilio-server"

    def __init__(
        self, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN, *, page_size: int = 50
    ) -> None:
        super().__init__()
        self.account_sid, self.auth_token, self.page_size = account_sid, auth_token, page_size
        self.plan: deque[Fault] = deque()  # answers for the next creates, in order
        self.number_faults: dict[str, Fault] = {}  # every create to this number gets this answer
        self.messages: list[Message] = []  # accepted messages, in order
        self.attempts: list[tuple[str, int]] = []  # (To, HTTP status answered) for every create
        self.arrivals: list[float] = []  # time.time() when each create arrived (rate limits are counted so)
        self.arrived: list[tuple[float, str]] = []  # (arrival, To) of every create that named one
        self.latency = 0.0  # seconds added to every create's answer, as a distant provider takes
        self._random: tuple[random.Random, float, Sequence[Fault]] | None = None
        self.failing_reads = 0  # answer the next N lists / fetches with 500
        self._random_reads: tuple[random.Random, float] | None = None
        self._lock = threading.Lock()

    # -- configuration ------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail_next(self, *faults: Fault) -> None:
        with self._lock:
            self.plan.extend(faults)

    def random_faults(
        self,
        percent: float,
        seed: int,
        faults: Sequence[Fault] = (Fault.too_many_requests(), Fault.server_error()),
    ) -> None:
        """Answer about `percent` % of creates (not planned ones) with one of `faults`, reproducibly."""
        self._random = (random.Random(seed), percent, tuple(faults))

    def fail_reads(self, count: int) -> None:
        with self._lock:
            self.failing_reads = count

    def random_read_faults(self, percent: float, seed: int) -> None:
        """Answer about `percent` % of lists and fetches with 500, reproducibly."""
        self._random_reads = (random.Random(seed), percent)

    def _read_fault(self) -> web.Response | None:
        with self._lock:
            failing = self.failing_reads > 0
            self.failing_reads -= failing
            if not failing and self._random_reads:
                rng, percent = self._random_reads
                failing = rng.random() * 100 < percent
        return _error(500, None, "Internal Server Error") if failing else None

    def accepted_by_recipient(self) -> Counter[str]:
        with self._lock:
            return Counter(m.to for m in self.messages)

    def get(self, sid: str) -> Message:
        return next(m for m in self.messages if m.sid == sid)

    # -- lifecycle (AioServer) ---------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        base = API + "/Accounts/{account}/Messages"
        app.router.add_post(base + ".json", self._create)
        app.router.add_get(base + ".json", self._list)
        app.router.add_get(base + "/{sid}.json", self._fetch)

    # -- handlers -----------------------------------------------------------------------
    def _authorised(self, request: web.Request) -> bool:
        try:
            auth = aiohttp.BasicAuth.decode(request.headers.get("Authorization", ""))
        except ValueError:
            return False
        return (auth.login, auth.password) == (self.account_sid, self.auth_token) and request.match_info[
            "account"
        ] == self.account_sid

    def _choose(self, to: str) -> Fault | None:
        with self._lock:
            if to in self.number_faults:
                return self.number_faults[to]
            if self.plan:
                return self.plan.popleft()
        if self._random:
            rng, percent, faults = self._random
            if rng.random() * 100 < percent:
                return rng.choice(faults)
        return None

    async def _create(self, request: web.Request) -> web.Response:
        arrived = time.time()
        with self._lock:
            self.arrivals.append(arrived)
        if self.latency:
            await asyncio.sleep(self.latency)
        if not self._authorised(request):
            return _error(401, 20003, "Authenticate")
        form = await request.post()
        to, body = str(form.get("To", "")), str(form.get("Body", ""))
        from_, service = form.get("From"), form.get("MessagingServiceSid")
        if not to:
            return _error(400, 21604, "A 'To' phone number is required.")
        with self._lock:
            self.arrived.append((arrived, to))
        if not from_ and not service:
            return _error(400, 21603, "A 'From' phone number is required.")
        if not body:
            return _error(400, 21602, "Message body is required.")
        fault = self._choose(to)
        message = None
        if fault is None or fault.accept or 200 <= fault.status < 300:
            message = Message(
                "SM" + secrets.token_hex(16),
                self.account_sid,
                to,
                str(from_) if from_ else None,
                str(service) if service else None,
                body,
                str(form["StatusCallback"]) if form.get("StatusCallback") else None,
                datetime.now(timezone.utc).replace(microsecond=0),
                segments(body),
                "queued" if from_ else "accepted",
            )
            with self._lock:
                self.messages.append(message)
        status = fault.status if fault else 201
        with self._lock:
            self.attempts.append((to, status))
        if fault and fault.delay:
            assert self._stopping is not None
            try:
                await asyncio.wait_for(self._stopping.wait(), fault.delay)
            except asyncio.TimeoutError:
                pass
        if fault and not 200 <= fault.status < 300:
            return _error(fault.status, fault.code, fault.message)
        assert message is not None
        return web.json_response(message.resource(), status=201)

    async def _fetch(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return _error(401, 20003, "Authenticate")
        if fault := self._read_fault():
            return fault
        sid = request.match_info["sid"]
        found = [m for m in self.messages if m.sid == sid]
        if not found:
            return _error(404, 20404, f"The requested resource {request.path} was not found")
        return web.json_response(found[0].resource())

    async def _list(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return _error(401, 20003, "Authenticate")
        if fault := self._read_fault():
            return fault
        q = request.query
        with self._lock:
            rows = [
                m
                for m in reversed(self.messages)  # newest first, as Twilio lists
                if (not q.get("To") or m.to == q["To"])
                and (not q.get("From") or m.from_ == q["From"])
                and _date_filters(m.created, q)
            ]
        size = int(q.get("PageSize", self.page_size))
        page = int(q.get("Page", 0))
        chunk = rows[page * size : (page + 1) * size]
        path = f"{API}/Accounts/{self.account_sid}/Messages.json"
        filters = {k: v for k, v in q.items() if k not in ("Page", "PageSize", "PageToken")}

        def uri(n: int) -> str:
            return path + "?" + urlencode({**filters, "PageSize": size, "Page": n})

        more = (page + 1) * size < len(rows)
        return web.json_response(
            {
                "messages": [m.resource() for m in chunk],
                "page": page,
                "page_size": size,
                "start": page * size,
                "end": page * size + max(len(chunk) - 1, 0),
                "uri": uri(page),
                "first_page_uri": uri(0),
                "previous_page_uri": uri(page - 1) if page else None,
                "next_page_uri": uri(page + 1) if more else None,
            }
        )

    # -- status callbacks ---------------------------------------------------------------
    async def send_status_callbacks(
        self,
        sid: str,
        statuses: Iterable[str] = ("queued", "sent", "delivered"),
        *,
        url: str | None = None,
        duplicate: bool = False,
        out_of_order: bool = False,
        error_code: int | None = 30003,
    ) -> list[int]:
        """POST Twilio-style signed receipts for message `sid` to `url` (default: the message's
        StatusCallback). Returns the HTTP status of each POST. The message's own status becomes
        the last of `statuses` in their given order, whatever order they are delivered in."""
        message = self.get(sid)
        target = url or message.status_callback
        assert target, "no status callback URL"
        order = list(statuses)
        message.status = order[-1]
        sending = list(reversed(order)) if out_of_order else order
        if duplicate:
            sending = [s for s in sending for _ in (0, 1)]
        validator = RequestValidator(self.auth_token)
        answers = []
        async with aiohttp.ClientSession() as session:
            for status in sending:
                params = {
                    "AccountSid": message.account_sid,
                    "ApiVersion": "2010-04-01",
                    "From": message.from_ or "",
                    "MessageSid": sid,
                    "MessageStatus": status,
                    "SmsSid": sid,
                    "SmsStatus": status,
                    "To": message.to,
                }
                if message.messaging_service_sid:
                    params["MessagingServiceSid"] = message.messaging_service_sid
                if status in ("undelivered", "failed") and error_code:
                    params["ErrorCode"] = str(error_code)
                    message.error_code = error_code
                headers = {"X-Twilio-Signature": validator.compute_signature(target, params)}
                async with session.post(target, data=params, headers=headers) as response:
                    answers.append(response.status)
        return answers

    def send_status_callbacks_sync(
        self, sid: str, statuses: Iterable[str] = ("queued", "sent", "delivered"), **kwargs: Any
    ) -> list[int]:
        """The same from a test's thread while the server runs in its own."""
        assert self._loop is not None, "server is not running in a thread"
        coro = self.send_status_callbacks(sid, tuple(statuses), **kwargs)
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)


def _date_filters(created: datetime, q: Any) -> bool:
    """DateSent=, DateSent>= and DateSent<= (dates or ISO datetimes). In a query string
    `DateSent>=X` parses as the key `DateSent>` with the value X, which is also what the twilio
    client sends for date_sent_after (it names the parameter "DateSent>")."""
    tests: tuple[tuple[str, Callable[[Any, Any], bool]], ...] = (
        ("DateSent", operator.eq),
        ("DateSent>", operator.ge),
        ("DateSent<", operator.le),
    )
    for key, test in tests:
        value = q.get(key)
        if not value:
            continue
        if "T" in value:
            bound: Any = datetime.fromisoformat(value.replace("Z", "+00:00"))
            mine: Any = created
        else:
            bound, mine = date.fromisoformat(value), created.date()
        if not test(mine, bound):
            return False
    return True
