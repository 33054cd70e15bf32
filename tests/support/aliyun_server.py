"""An Aliyun SMS-compatible API (dysmsapi 2017-05-25, RPC style) on 127.0.0.1 for tests, so the
official `alibabacloud_dysmsapi20170525` SDK is exercised over real HTTP without reaching Aliyun.

What the SDK sends (alibabacloud_tea_openapi `do_request`): POST / with the action's parameters
in the query string, `x-acs-action` / `x-acs-version` headers, and an `Authorization:
ACS3-HMAC-SHA256 Credential=<AccessKeyId>,SignedHeaders=...,Signature=<hex>` header over the
canonical request. This server checks all of it: the action and version, the action's required
parameters, the AccessKeyId, and the signature itself (recomputed with the secret), so a request
the real API would refuse is refused here too (HTTP 400/403 with Aliyun's codes).

It speaks SendSms, SendBatchSms and QuerySendDetails. Faults: a plan (queue) of codes for the
next send calls, a code per number (a batch containing it is refused as a whole, as Aliyun
does), slow answers (recorded first, answered late: the ambiguous case), HTTP 5xx. Accepted
messages are recorded (number, sign, template, params, text as the handset shows it), and
`push_reports` / `push_reply` post SmsReport / SmsUp arrays to `serve` the way Aliyun pushes.

Runs in the caller's event loop (`async with AliyunServer() as s`) or in a thread of its own
(`with AliyunServer() as s`) for code that runs its own loops.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import re
import secrets
import threading
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, quote

import aiohttp
from aiohttp import web

from .aioserver import AioServer

ACCESS_KEY_ID = "LTAI5tTestAccessKeyId0001"
ACCESS_KEY_SECRET = "test-access-key-secret-0123456789"
VERSION = "2017-05-25"
BEIJING = timezone(timedelta(hours=8))
SIGN_ALGORITHM = "ACS3-HMAC-SHA256"
_AUTH = re.compile(
    rf"^{SIGN_ALGORITHM} Credential=([^,]+),SignedHeaders=([a-z0-9\-;]+),Signature=([0-9a-f]{{64}})$"
)

REQUIRED = {
    "SendSms": ("PhoneNumbers", "SignName", "TemplateCode"),
    "SendBatchSms": ("PhoneNumberJson", "SignNameJson", "TemplateCode"),
    "QuerySendDetails": ("PhoneNumber", "SendDate", "PageSize", "CurrentPage"),
}


@dataclass(frozen=True)
class Fault:
    """One scripted answer to a send call: an Aliyun `code` (HTTP 200 with that Code, as Aliyun
    answers business refusals), an HTTP `status` error, or a `delay` before a normal answer (the
    message is recorded first, like Aliyun accepting a message whose answer never arrives)."""

    code: str = "OK"
    status: int = 200
    delay: float = 0.0
    message: str = ""

    @classmethod
    def refuse(cls, code: str, message: str = "") -> Fault:
        return cls(code, message=message or code)

    @classmethod
    def throttled(cls) -> Fault:
        return cls("Throttling.User", 400, message="Request was denied due to user flow control.")

    @classmethod
    def server_error(cls, status: int = 500) -> Fault:
        return cls(
            "InternalError", status, message="The request processing has failed due to some unknown error."
        )

    @classmethod
    def slow(cls, delay: float) -> Fault:
        return cls(delay=delay)

    @property
    def accepts(self) -> bool:
        return self.code == "OK" and self.status == 200


@dataclass
class Message:
    biz_id: str
    out_id: str
    phone: str
    sign: str
    template: str
    params: dict[str, str]
    content: str
    sent: datetime
    status: int = 1  # QuerySendDetails SendStatus: 1 waiting, 2 failed, 3 delivered
    err_code: str = ""

    def detail(self) -> dict[str, Any]:
        when = self.sent.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")
        return {
            "PhoneNum": self.phone,
            "SendStatus": self.status,
            "ErrCode": self.err_code or ("DELIVERED" if self.status == 3 else ""),
            "TemplateCode": self.template,
            "Content": self.content,
            "SendDate": when,
            "ReceiveDate": when if self.status != 1 else "",
            "OutId": self.out_id,
        }


def _canonical_query(query: dict[str, str]) -> str:
    return "&".join(f"{k}={quote(query[k], safe='~')}" for k in sorted(query))


def expected_signature(
    secret: str,
    method: str,
    path: str,
    query: dict[str, str],
    headers: dict[str, str],
    signed: str,
    payload: str,
) -> str:
    """The ACS3-HMAC-SHA256 signature of a request, computed the way Aliyun's gateway does."""
    canonical_headers = "".join(f"{h}:{headers.get(h, '').strip()}\n" for h in signed.split(";"))
    canonical = (
        f"{method}\n{path or '/'}\n{_canonical_query(query)}\n{canonical_headers}\n{signed}\n{payload}"
    )
    to_sign = f"{SIGN_ALGORITHM}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    return hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()


def _answer(code: str, message: str, status: int = 200, **extra: Any) -> web.Response:
    body = {"RequestId": secrets.token_hex(8).upper(), "Code": code, "Message": message} | extra
    return web.json_response(body, status=status)


class AliyunServer(AioServer):
    name = "aliyun-server"

    def __init__(
        self, access_key_id: str = ACCESS_KEY_ID, access_key_secret: str = ACCESS_KEY_SECRET
    ) -> None:
        super().__init__()
        self.access_key_id, self.access_key_secret = access_key_id, access_key_secret
        self.templates: dict[str, str] = {}  # registered template code -> text with ${var}
        self.signs: set[str] = set()  # approved signatures; empty: any
        self.plan: deque[Fault] = deque()  # answers for the next send calls, in order
        self.number_faults: dict[str, Fault] = {}  # every call carrying this number gets this answer
        self.messages: list[Message] = []  # accepted messages, in order
        self.calls: list[tuple[str, int, str]] = []  # (action, numbers, Code answered) per call
        self.failing_reads = 0  # answer the next N QuerySendDetails with HTTP 500
        self._random: tuple[random.Random, float, Sequence[Fault]] | None = None
        self._random_reads: tuple[random.Random, float] | None = None
        self._lock = threading.Lock()

    # -- configuration ------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def table(self, **extra: Any) -> dict[str, Any]:
        """A `[providers.aliyun]` table pointing at this server."""
        base = {
            "access_key_id": self.access_key_id,
            "access_key_secret": self.access_key_secret,
            "endpoint": self.endpoint,
            "protocol": "http",
            "timeout": 5,
        }
        return base | extra

    def fail_next(self, *faults: Fault) -> None:
        with self._lock:
            self.plan.extend(faults)

    def random_faults(self, percent: float, seed: int, faults: Sequence[Fault]) -> None:
        """Answer about `percent` % of send calls (not planned ones) with one of `faults`, reproducibly."""
        self._random = (random.Random(seed), percent, tuple(faults))

    def random_read_faults(self, percent: float, seed: int) -> None:
        """Answer about `percent` % of QuerySendDetails with HTTP 500, reproducibly."""
        self._random_reads = (random.Random(seed), percent)

    def accepted_by_number(self) -> Counter[str]:
        with self._lock:
            return Counter(m.phone for m in self.messages)

    def register(self, code: str, text: str) -> None:
        self.templates[code] = text

    # -- lifecycle (AioServer) ---------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/", self._rpc)

    # -- the API ------------------------------------------------------------------------
    def _refuse_request(self, request: web.Request, body: bytes) -> web.Response | None:
        """Aliyun's gateway checks before any action runs: version, credential, signature."""
        headers = {k.lower(): v for k, v in request.headers.items()}
        if headers.get("x-acs-version") != VERSION:
            return _answer("InvalidVersion", f"version {headers.get('x-acs-version')!r}", 400)
        match = _AUTH.match(headers.get("authorization", ""))
        if match is None:
            return _answer("IncompleteSignature", "Authorization header missing or malformed", 400)
        key_id, signed, signature = match.groups()
        if key_id != self.access_key_id:
            return _answer("InvalidAccessKeyId.NotFound", "Specified access key is not found.", 404)
        if not {"host", "x-acs-action", "x-acs-content-sha256", "x-acs-date"} <= set(signed.split(";")):
            return _answer("IncompleteSignature", f"SignedHeaders {signed!r} misses required headers", 400)
        payload = headers.get("x-acs-content-sha256", "")
        if payload != hashlib.sha256(body).hexdigest():
            return _answer("IncompleteSignature", "x-acs-content-sha256 does not match the body", 400)
        query = dict(request.query)
        want = expected_signature(
            self.access_key_secret, request.method, request.path, query, headers, signed, payload
        )
        if not hmac.compare_digest(want, signature):
            return _answer(
                "SignatureDoesNotMatch", "Specified signature is not matched with our calculation.", 400
            )
        return None

    async def _rpc(self, request: web.Request) -> web.Response:
        body = await request.read()
        refused = self._refuse_request(request, body)
        if refused is not None:
            return refused
        action = request.headers.get("x-acs-action", "")
        q = dict(request.query)
        if body:  # SendBatchSms carries its JSON arrays as a form body
            if request.content_type != "application/x-www-form-urlencoded":
                return _answer("InvalidParameter", f"unexpected body of type {request.content_type}", 400)
            q |= dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        if action not in REQUIRED:
            return _answer("InvalidAction.NotFound", f"Specified api {action!r} is not found", 404)
        missing = [p for p in REQUIRED[action] if not q.get(p)]
        if missing:
            return _answer(f"Missing{missing[0]}", f"{missing[0]} is mandatory for this action.", 400)
        if action == "QuerySendDetails":
            return self._query(q)
        if action == "SendSms":
            phones = q["PhoneNumbers"].split(",")
            signs = [q["SignName"]] * len(phones)
            params = [self._json(q.get("TemplateParam") or "{}")] * len(phones)
        else:
            try:
                phones, signs = json.loads(q["PhoneNumberJson"]), json.loads(q["SignNameJson"])
                params = json.loads(q.get("TemplateParamJson") or "null") or [{}] * len(phones)
            except json.JSONDecodeError:
                return _answer("isv.INVALID_JSON_PARAM", "JSON parameter is not valid", 200)
            if not (len(phones) == len(signs) == len(params)):
                return _answer("isv.INVALID_PARAMETERS", "numbers, signs and params differ in count", 200)
            if len(phones) > 100:
                return _answer("isv.MOBILE_COUNT_OVER_LIMIT", "more than 100 numbers", 200)
        if any(p is None for p in params):
            return _answer("isv.INVALID_JSON_PARAM", "TemplateParam is not valid JSON", 200)
        return await self._send(action, q, phones, signs, params)

    @staticmethod
    def _json(text: str) -> dict[str, str] | None:
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, dict) else None

    def _choose(self, phones: Sequence[str]) -> Fault | None:
        with self._lock:
            for p in phones:
                if p in self.number_faults:
                    return self.number_faults[p]
            if self.plan:
                return self.plan.popleft()
            if self._random:
                rng, percent, faults = self._random
                if rng.random() * 100 < percent:
                    return rng.choice(faults)
        return None

    def _content(self, code: str, sign: str, params: dict[str, str]) -> tuple[str, str]:
        """(Code, text as the handset shows it) of one message, checked against the template."""
        if self.signs and sign not in self.signs:
            return "isv.SMS_SIGNATURE_ILLEGAL", ""
        text = self.templates.get(code)
        if text is None:
            return "OK", f"【{sign}】" + "".join(f"{k}={v};" for k, v in params.items())
        names = re.findall(r"\$\{(\w+)\}", text)
        if any(n not in params for n in names):
            return "isv.TEMPLATE_MISSING_PARAMETERS", ""
        if any(not isinstance(params[n], str) or len(params[n]) > 35 for n in names):
            return "isv.PARAM_LENGTH_LIMIT", ""
        return "OK", f"【{sign}】" + re.sub(r"\$\{(\w+)\}", lambda m: params[m.group(1)], text)

    async def _send(
        self, action: str, q: dict[str, str], phones: list[str], signs: list[str], params: list[Any]
    ) -> web.Response:
        fault = self._choose(phones)
        code = fault.code if fault else "OK"
        contents: list[str] = []
        if code == "OK" and (fault is None or fault.status == 200):
            for sign, p in zip(signs, params, strict=True):
                code, content = self._content(q["TemplateCode"], sign, p)
                if code != "OK":
                    break
                contents.append(content)
        biz_id = f"{secrets.randbelow(10**6):06d}^{secrets.randbelow(10**10):010d}"
        accepted = code == "OK" and (fault is None or fault.status == 200)
        if accepted:
            now = datetime.now(timezone.utc)
            with self._lock:
                for phone, sign, p, content in zip(phones, signs, params, contents, strict=True):
                    self.messages.append(
                        Message(biz_id, q.get("OutId", ""), phone, sign, q["TemplateCode"], p, content, now)
                    )
        with self._lock:
            self.calls.append((action, len(phones), code))
        if fault and fault.delay:
            assert self._stopping is not None
            try:
                await asyncio.wait_for(self._stopping.wait(), fault.delay)
            except asyncio.TimeoutError:
                pass
        if fault and fault.status != 200:
            return _answer(fault.code, fault.message, fault.status)
        if not accepted:
            return _answer(code, (fault.message if fault else "") or code)
        return _answer("OK", "OK", BizId=biz_id)

    def _query(self, q: dict[str, str]) -> web.Response:
        with self._lock:
            failing = self.failing_reads > 0
            self.failing_reads -= failing
            if not failing and self._random_reads:
                rng, percent = self._random_reads
                failing = rng.random() * 100 < percent
            if failing:
                return _answer("InternalError", "The request processing has failed.", 500)
            rows = [
                m
                for m in self.messages
                if m.phone == q["PhoneNumber"]
                and m.sent.astimezone(BEIJING).strftime("%Y%m%d") == q["SendDate"]
                and (not q.get("BizId") or m.biz_id == q["BizId"])
            ]
        size, page = int(q["PageSize"]), int(q["CurrentPage"])
        if size > 50:
            return _answer("isv.INVALID_PARAMETERS", "PageSize must be at most 50", 200)
        chunk = rows[(page - 1) * size : page * size]
        return _answer(
            "OK",
            "OK",
            TotalCount=len(rows),
            SmsSendDetailDTOs={"SmsSendDetailDTO": [m.detail() for m in chunk]},
        )

    # -- pushes to serve ------------------------------------------------------------------
    def report(self, m: Message, success: bool = True, err_code: str = "DELIVERED") -> dict[str, Any]:
        """One SmsReport item as Aliyun pushes it; the message's own status follows it."""
        m.status, m.err_code = (3, "DELIVERED") if success else (2, err_code)
        when = m.sent.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")
        return {
            "phone_number": m.phone,
            "send_time": when,
            "report_time": when,
            "success": success,
            "err_code": "DELIVERED" if success else err_code,
            "err_msg": "用户接收成功" if success else "失败",
            "sms_size": "1",
            "biz_id": m.biz_id,
            "out_id": m.out_id,
        }

    async def push(self, url: str, items: Iterable[dict[str, Any]]) -> tuple[int, Any]:
        async with aiohttp.ClientSession() as session:
            async with session.post(url, json=list(items)) as response:
                text = await response.text()
                try:
                    return response.status, json.loads(text)
                except json.JSONDecodeError:
                    return response.status, text

    async def push_reports(
        self, url: str, messages: Sequence[Message], *, success: bool = True, duplicate: bool = False
    ) -> tuple[int, Any]:
        items = [self.report(m, success) for m in messages]
        return await self.push(url, items + items if duplicate else items)

    async def push_reply(self, url: str, phone: str, content: str, sign: str = "") -> tuple[int, Any]:
        now = datetime.now(BEIJING).strftime("%Y-%m-%d %H:%M:%S")
        item = {
            "phone_number": phone,
            "send_time": now,
            "content": content,
            "sign_name": sign,
            "dest_code": "1234",
            "sequence_id": secrets.randbelow(10**9),
        }
        return await self.push(url, [item])

    def sync(self, coro: Any) -> Any:
        """Run one of the push coroutines from a test's thread while the server runs in its own."""
        assert self._loop is not None, "server is not running in a thread"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)
