"""A Tencent Cloud SMS-compatible API (2021-01-11) on 127.0.0.1 for tests, so the official
`tencentcloud-sdk-python-sms` client is exercised over real HTTP without reaching Tencent.

It speaks Cloud API 3.0 as the SDK sends it: POST / with a JSON body, the action in X-TC-Action,
X-TC-Version 2021-01-11, X-TC-Timestamp, and an `Authorization: TC3-HMAC-SHA256 Credential=...,
SignedHeaders=content-type;host, Signature=...` header whose signature is recomputed here with the
test key (a wrong key is AuthFailure.SignatureFailure, an unknown SecretId
AuthFailure.SecretIdNotFound, a stale timestamp AuthFailure.SignatureExpire). Answers are HTTP 200
with `{"Response": {..., "RequestId": ...}}`, errors as `{"Response": {"Error": {"Code",
"Message"}, "RequestId"}}`, exactly `Content-Type: application/json` (the SDK reads errors only
under that type).

SendSms checks SmsSdkAppId, the approved signature and template (TemplateParamSet must have the
template's number of variables), at most 200 numbers in E.164, and answers one SendStatus per
number. Faults: per number (a SendStatus code such as FailedOperation.PhoneNumberInBlacklist) or
per call from a plan (a whole-request error code, an HTTP status, a slow answer that records the
messages *before* waiting, like Tencent accepting a request whose answer never arrives).
PullSmsSendStatusByPhoneNumber lists every accepted message to a number since BeginTime, with its
report once one is given (ReportStatus empty before: an assumption of this fake; Tencent documents
the field only for reported messages). `send_reports` / `send_reply` push receipts and replies the
way Tencent's callbacks do (JSON, no signature), optionally duplicated or out of order.

Runs in the caller's event loop (`async with TencentServer() as s`) or in a thread of its own
(`with TencentServer() as s`).
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
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import aiohttp
from aiohttp import web

from .aioserver import AioServer

SECRET_ID = "AKIDtest0123456789abcdefghijklmnop"
SECRET_KEY = "test-secret-key-0123456789abcdef"
SDK_APP_ID = "1400000001"
SIGN = "某某县民政局"
TEMPLATE_ID = "1234567"
VERSION = "2021-01-11"
SERVICE = "sms"
MAX_NUMBERS = 200
JSON = "application/json"

_AUTH = re.compile(
    r"^TC3-HMAC-SHA256 Credential=(?P<id>[^/]+)/(?P<date>\d{4}-\d{2}-\d{2})/(?P<service>[a-z]+)/tc3_request, "
    r"SignedHeaders=(?P<signed>[a-z;-]+), Signature=(?P<signature>[0-9a-f]{64})$"
)
_E164_CN = re.compile(r"^\+861[3-9]\d{9}$")


@dataclass(frozen=True)
class Fault:
    """One scripted answer to a SendSms. `code` is a whole-request Error.Code (HTTP 200, as
    Tencent answers), `http_status` a bare HTTP error (a gateway's 502), `delay` seconds before
    answering; `accept` records the messages even though the answer is an error or too late."""

    code: str = ""
    message: str = ""
    http_status: int = 200
    delay: float = 0.0
    accept: bool = False

    @classmethod
    def error(cls, code: str, message: str = "") -> Fault:
        return cls(code, message or code)

    @classmethod
    def server_error(cls, status: int = 502) -> Fault:
        return cls(http_status=status, message="Bad Gateway")

    @classmethod
    def slow(cls, delay: float) -> Fault:
        return cls(delay=delay, accept=True)


@dataclass
class Message:
    serial_no: str
    phone: str
    template_id: str
    sign: str
    params: list[str]
    session_context: str
    sdk_app_id: str
    created: datetime
    report: str = ""  # SUCCESS / FAIL once reported
    errmsg: str = ""
    content: str = ""  # as the handset shows it, when the template's text was registered
    received: float = field(default_factory=time.monotonic)  # when the request came (monotonic)

    def pulled(self) -> dict[str, Any]:
        """As PullSmsSendStatusByPhoneNumber lists it."""
        return {
            "UserReceiveTime": int(self.created.timestamp()) if self.report else None,
            "CountryCode": "86",
            "SubscriberNumber": self.phone[3:],
            "PhoneNumber": self.phone,
            "SerialNo": self.serial_no,
            "ReportStatus": self.report,
            "Description": self.errmsg,
            "SessionContext": self.session_context,
        }


def tc3_signature(secret_key: str, date: str, string_to_sign: str) -> str:
    """TC3-HMAC-SHA256 as Tencent documents it: a key derived from the date and the service."""

    def sign(key: bytes, msg: str) -> bytes:
        return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()

    key = sign(sign(sign(("TC3" + secret_key).encode("utf-8"), date), SERVICE), "tc3_request")
    return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def _answer(body: dict[str, Any]) -> web.Response:
    body["RequestId"] = str(uuid.uuid4())
    text = json.dumps({"Response": body}, ensure_ascii=False)
    # exactly application/json, no charset: the SDK reads errors only under that header
    return web.Response(body=text.encode("utf-8"), content_type=JSON)


def _error(code: str, message: str) -> web.Response:
    return _answer({"Error": {"Code": code, "Message": message}})


@dataclass
class Call:
    """One API call as received: its action, the numbers it named, how it was answered."""

    action: str
    numbers: list[str]
    answer: str  # "Ok", an error code, or "HTTP <status>"
    params: dict[str, Any] = field(default_factory=dict)


class TencentServer(AioServer):
    name = "tencent-server"

    def __init__(
        self,
        secret_id: str = SECRET_ID,
        secret_key: str = SECRET_KEY,
        sdk_app_id: str = SDK_APP_ID,
        *,
        templates: dict[str, int] | None = None,
        signs: Iterable[str] = (SIGN,),
    ) -> None:
        super().__init__()
        self.secret_id, self.secret_key, self.sdk_app_id = secret_id, secret_key, sdk_app_id
        self.templates = {TEMPLATE_ID: 2} if templates is None else dict(templates)  # id -> variables
        self.signs = set(signs)
        self.plan: deque[Fault] = deque()  # answers for the next SendSms calls, in order
        self.number_faults: dict[str, str] = {}  # E.164 -> the SendStatus code for every send to it
        self.messages: list[Message] = []  # accepted, in order
        self.calls: list[Call] = []
        self.failing_reads = 0  # answer the next N PullSmsSendStatusByPhoneNumber with InternalError
        self.texts: dict[str, str] = {}  # template id -> registered text with {1}..{n}
        self._random: tuple[random.Random, float, Sequence[Fault]] | None = None
        self._random_reads: tuple[random.Random, float] | None = None
        self._lock = threading.Lock()

    # -- configuration ------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def table(self, **extra: Any) -> dict[str, Any]:
        """A `[providers.tencent]` table pointing at this server."""
        base = {
            "secret_id": self.secret_id,
            "secret_key": self.secret_key,
            "sdk_app_id": self.sdk_app_id,
            "endpoint": self.endpoint,
            "protocol": "http",
            "timeout": 5,
        }
        return base | extra

    def register(self, template_id: str, text: str, sign: str | None = None) -> None:
        """An approved template (its text with {1}..{n}) and, if given, an approved signature."""
        with self._lock:
            self.templates[template_id] = len(set(re.findall(r"\{(\d+)\}", text)))
            self.texts[template_id] = text
            if sign:
                self.signs.add(sign)

    def random_faults(self, percent: float, seed: int, faults: Sequence[Fault]) -> None:
        """Answer about `percent` % of SendSms (not planned ones) with one of `faults`, reproducibly."""
        self._random = (random.Random(seed), percent, tuple(faults))

    def random_read_faults(self, percent: float, seed: int) -> None:
        """Answer about `percent` % of PullSmsSendStatusByPhoneNumber with InternalError, reproducibly."""
        self._random_reads = (random.Random(seed), percent)

    def fail_next(self, *faults: Fault) -> None:
        with self._lock:
            self.plan.extend(faults)

    def fail_number(self, phone: str, code: str) -> None:
        with self._lock:
            self.number_faults[phone] = code

    def fail_reads(self, count: int) -> None:
        with self._lock:
            self.failing_reads = count

    def accepted_by_recipient(self) -> Counter[str]:
        with self._lock:
            return Counter(m.phone for m in self.messages)

    def get(self, serial_no: str) -> Message:
        return next(m for m in self.messages if m.serial_no == serial_no)

    # -- lifecycle (AioServer) ---------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/", self._api)

    # -- the API ------------------------------------------------------------------------
    def _refusal(self, request: web.Request, body: bytes) -> tuple[str, str] | None:
        """(code, message) if the request is not what the SDK sends or is not signed with our key."""
        h = request.headers
        if h.get("Content-Type") != JSON:
            return "InvalidParameter", f"expected {JSON}, got {h.get('Content-Type')!r}"
        if h.get("X-TC-Version") != VERSION:
            return "NoSuchVersion", f"X-TC-Version must be {VERSION}"
        if not h.get("X-TC-Region"):
            return "MissingParameter", "X-TC-Region missing"
        timestamp = h.get("X-TC-Timestamp", "")
        if not timestamp.isdigit():
            return "MissingParameter", "X-TC-Timestamp missing"
        auth = _AUTH.match(h.get("Authorization", ""))
        if auth is None:
            return "AuthFailure.InvalidAuthorization", "Authorization is not TC3-HMAC-SHA256"
        if auth["id"] != self.secret_id:
            return "AuthFailure.SecretIdNotFound", "The SecretId is not found"
        if auth["service"] != SERVICE or auth["signed"] != "content-type;host":
            return "AuthFailure.InvalidAuthorization", "Credential scope or SignedHeaders wrong"
        if abs(time.time() - int(timestamp)) > 300:
            return "AuthFailure.SignatureExpire", "Signature expired"
        canonical = "\n".join(
            [
                "POST",
                "/",
                "",
                f"content-type:{h['Content-Type']}\nhost:{h.get('Host', '')}\n",
                "content-type;host",
                hashlib.sha256(body).hexdigest(),
            ]
        )
        scope = f"{auth['date']}/{SERVICE}/tc3_request"
        to_sign = "\n".join(
            ["TC3-HMAC-SHA256", timestamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        if not hmac.compare_digest(tc3_signature(self.secret_key, auth["date"], to_sign), auth["signature"]):
            return "AuthFailure.SignatureFailure", "The provided credentials could not be validated"
        return None

    async def _api(self, request: web.Request) -> web.Response:
        body = await request.read()
        action = request.headers.get("X-TC-Action", "")
        refusal = self._refusal(request, body)
        if refusal is not None:
            self._record(Call(action, [], refusal[0]))
            return _error(*refusal)
        try:
            params = json.loads(body)
        except ValueError:
            return _error("FailedOperation.JsonParseFail", "body is not JSON")
        if action == "SendSms":
            return await self._send(params)
        if action == "PullSmsSendStatusByPhoneNumber":
            return self._pull(params)
        return _error("InvalidAction", f"no action {action!r}")

    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def _check_send(self, p: dict[str, Any]) -> tuple[str, str] | None:
        numbers = p.get("PhoneNumberSet")
        if not isinstance(numbers, list) or not numbers:
            return "MissingParameter.EmptyPhoneNumberSet", "PhoneNumberSet is empty"
        if len(numbers) > MAX_NUMBERS:
            return "LimitExceeded.PhoneNumberCountLimit", f"more than {MAX_NUMBERS} numbers"
        if p.get("SmsSdkAppId") != self.sdk_app_id:
            return "InvalidParameterValue.SdkAppIdNotExist", "SmsSdkAppId does not exist"
        if p.get("SignName") not in self.signs:
            return "FailedOperation.SignatureIncorrectOrUnapproved", "signature not approved"
        template = p.get("TemplateId")
        if template not in self.templates:
            return "FailedOperation.TemplateIncorrectOrUnapproved", "template not approved"
        values = p.get("TemplateParamSet") or []
        if len(values) != self.templates[template] or not all(isinstance(v, str) for v in values):
            return (
                "FailedOperation.TemplateParamSetNotMatchApprovedTemplate",
                f"template {template} takes {self.templates[template]} parameters",
            )
        context = p.get("SessionContext") or ""
        if len(context.encode()) >= 512:
            return "InvalidParameterValue", "SessionContext must be under 512 bytes"
        return None

    def _choose(self) -> Fault | None:
        with self._lock:
            if self.plan:
                return self.plan.popleft()
            if self._random:
                rng, percent, faults = self._random
                if rng.random() * 100 < percent:
                    return rng.choice(faults)
        return None

    def _content(self, p: dict[str, Any]) -> str:
        text = self.texts.get(p["TemplateId"])
        if text is None:
            return ""
        values = list(p.get("TemplateParamSet") or [])
        filled = re.sub(r"\{(\d+)\}", lambda m: values[int(m.group(1)) - 1], text)
        return f"【{p['SignName']}】{filled}"

    async def _send(self, p: dict[str, Any]) -> web.Response:
        numbers = [str(n) for n in p.get("PhoneNumberSet") or []]
        problem = self._check_send(p)
        if problem is not None:
            self._record(Call("SendSms", numbers, problem[0], p))
            return _error(*problem)
        fault = self._choose()
        statuses, accepted = [], []
        now = datetime.now(timezone.utc).replace(microsecond=0)
        for phone in numbers:
            with self._lock:
                code = self.number_faults.get(phone, "")
            if not code and not _E164_CN.match(phone):
                code = "InvalidParameterValue.IncorrectPhoneNumber"
            serial = "" if code else f"2433:{secrets.randbelow(10**30):030d}"
            statuses.append(
                {
                    "SerialNo": serial,
                    "PhoneNumber": phone,
                    "Fee": 0 if code else 1,
                    "SessionContext": p.get("SessionContext") or "",
                    "Code": code or "Ok",
                    "Message": code or "send success",
                    "IsoCode": "CN",
                }
            )
            if not code:
                accepted.append(
                    Message(
                        serial,
                        phone,
                        p["TemplateId"],
                        p["SignName"],
                        list(p.get("TemplateParamSet") or []),
                        p.get("SessionContext") or "",
                        p["SmsSdkAppId"],
                        now,
                        content=self._content(p),
                    )
                )
        failed = fault is not None and (fault.code or fault.http_status != 200)
        if fault is None or not failed or fault.accept:
            with self._lock:
                self.messages.extend(accepted)
        answer = (fault.code or f"HTTP {fault.http_status}") if fault and failed else "Ok"
        self._record(Call("SendSms", numbers, answer, p))
        if fault and fault.delay:
            assert self._stopping is not None
            try:
                await asyncio.wait_for(self._stopping.wait(), fault.delay)
            except asyncio.TimeoutError:
                pass
        if fault and fault.http_status != 200:
            return web.Response(status=fault.http_status, text=fault.message)
        if fault and fault.code:
            return _error(fault.code, fault.message)
        return _answer({"SendStatusSet": statuses})

    def _pull(self, p: dict[str, Any]) -> web.Response:
        phone = str(p.get("PhoneNumber") or "")
        with self._lock:
            failing = self.failing_reads > 0
            self.failing_reads -= failing
            if not failing and self._random_reads:
                rng, percent = self._random_reads
                failing = rng.random() * 100 < percent
        self._record(Call("PullSmsSendStatusByPhoneNumber", [phone], "InternalError" if failing else "Ok", p))
        if failing:
            return _error("InternalError.OtherError", "internal error")
        if p.get("SmsSdkAppId") != self.sdk_app_id:
            return _error("InvalidParameterValue.SdkAppIdNotExist", "SmsSdkAppId does not exist")
        begin, limit, offset = p.get("BeginTime"), p.get("Limit"), p.get("Offset")
        if not isinstance(begin, int) or not isinstance(limit, int) or not 0 < limit <= 100:
            return _error("InvalidParameterValue.BeginTimeVerifyFail", "BeginTime and Limit (1-100) needed")
        if offset != 0:  # "注：目前固定设置为0" (the API's documentation)
            return _error("InvalidParameterValue", "Offset is fixed at 0")
        if begin < time.time() - 7 * 86400:
            return _error("InvalidParameterValue.BeginTimeVerifyFail", "at most the last 7 days")
        end = p.get("EndTime")
        with self._lock:
            rows = [
                m
                for m in self.messages
                if m.phone == phone
                and m.created.timestamp() >= begin
                and (not isinstance(end, int) or m.created.timestamp() <= end)
            ]
        return _answer({"PullSmsSendStatusSet": [m.pulled() for m in rows[:limit]]})

    # -- callbacks ----------------------------------------------------------------------
    def report(
        self, serial_no: str, status: str = "SUCCESS", errmsg: str = "", description: str = ""
    ) -> dict[str, str]:
        """One status report as Tencent's callback carries it; the message takes its status."""
        message = self.get(serial_no)
        message.report = status
        message.errmsg = errmsg or ("DELIVRD" if status == "SUCCESS" else "002")
        return {
            "user_receive_time": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
            "nationcode": "86",
            "mobile": message.phone[3:],
            "report_status": status,
            "errmsg": message.errmsg,
            "description": description or ("用户短信送达成功" if status == "SUCCESS" else "用户短信未送达"),
            "sid": serial_no,
        }

    async def send_reports(
        self,
        url: str,
        reports: Sequence[dict[str, str]],
        *,
        one_call: bool = True,
        duplicate: bool = False,
        out_of_order: bool = False,
    ) -> list[tuple[int, str]]:
        """POST reports to `url` as Tencent does (a JSON array, several reports per call when
        `one_call`); (HTTP status, body) of each POST."""
        sending = list(reversed(reports)) if out_of_order else list(reports)
        if duplicate:
            sending = [r for r in sending for _ in (0, 1)]
        batches = [sending] if one_call else [[r] for r in sending]
        return [await self._post(url, batch) for batch in batches]

    async def send_reply(
        self, url: str, phone: str, text: str, sign: str = SIGN, *, when: int | None = None
    ) -> tuple[int, str]:
        """POST a resident's reply as Tencent's reply callback does (one JSON object)."""
        body = {
            "extend": "",
            "mobile": phone.removeprefix("+86"),
            "nationcode": "86",
            "sign": sign,
            "text": text,
            "time": int(time.time()) if when is None else when,
        }
        return await self._post(url, body)

    async def _post(self, url: str, body: Any) -> tuple[int, str]:
        async with aiohttp.ClientSession() as session:
            async with session.post(url, json=body) as response:
                return response.status, await response.text()

    def send_reports_sync(
        self, url: str, reports: Sequence[dict[str, str]], **kwargs: Any
    ) -> list[tuple[int, str]]:
        """The same from a test's thread while the server runs in its own."""
        assert self._loop is not None, "server is not running in a thread"
        return asyncio.run_coroutine_threadsafe(self.send_reports(url, reports, **kwargs), self._loop).result(
            30
        )

    def sync(self, coro: Any) -> Any:
        """Run one of the callback coroutines (send_reports, send_reply) from a test's thread
        while the server runs in its own."""
        assert self._loop is not None, "server is not running in a thread"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)
