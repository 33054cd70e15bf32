"""Delivery benchmark: SMS through Twilio, e-mail through SMTP and the token bucket, each against
a bare floor measured in the same run on the same machine and the same local server.

  sms        the real Dispatcher end to end (claim, render, send, record, audit) into a local
             Twilio-compatible server (tests/support/twilio_server.py, in its own thread), then
             TwilioProvider.send alone (asyncio.gather, bounded by the provider's concurrency)
  floor      a bare aiohttp loop POSTing the same form bodies (To, From, Body) to the same server
             with the same concurrency and reading each JSON answer
  email      the same for SmtpProvider (its configured pool, and again with connections=1)
             against a local aiosmtpd server that answers 250 to everything
  floor      plain aiosmtplib.SMTP on one connection sending the same messages one by one
  aliyun     the real Dispatcher into the local Aliyun-compatible server (tests/support/
             aliyun_server.py, its own thread; it verifies every request's signature) through the
             official SDK with the rule's registered template: batches of up to 100 numbers
             (SendBatchSms), then again one SendSms per message (`batch = false`)
  floor      a bare SDK loop: SendBatchSms of 100 numbers with the same variables, the same
             concurrency, each call in a worker thread as the provider does
  tencent    the real Dispatcher into the local Tencent-compatible server (tests/support/
             tencent_server.py, its own thread; it verifies every request's TC3 signature)
             through the official SDK. SendSms carries one TemplateParamSet, so only messages
             with identical values batch: a notice whose variables are the same for everyone
             (item and amount) goes 200 numbers per request; the same notice addressed to each
             resident (name and resident number in the variables) is one request per message
  floor      a bare SDK loop: SendSms of 200 numbers with the same values, the same concurrency,
             each call in a thread of a pool as the provider does
  bucket     a TokenBucket at --bucket-rate driven by many concurrent acquirers for
             --bucket-seconds: achieved rate, error vs the rate, busiest 1-second window

The parts run one after another (the machine has 2 cores; the servers share them with the
client). Messages sent by the provider-alone and floor passes are the ones the dispatcher pass
delivered (read back from the server), so every pass sends the same bodies.

    python bench/dispatch.py [--sms 5000] [--aliyun 5000] [--tencent 5000] [--email 5000]
                             [--bucket-seconds 30] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import csv
import email
import email.policy
import json
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from email.message import EmailMessage
from email.utils import formataddr, parseaddr
from pathlib import Path
from typing import Any

import aiohttp
import aiosmtplib
from aiosmtpd.controller import Controller

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from notifier import runs  # noqa: E402
from notifier.app import App  # noqa: E402
from notifier.channels.base import OutboundMessage, ProviderContext  # noqa: E402
from notifier.channels.ratelimit import TokenBucket  # noqa: E402
from notifier.channels.registry import providers_for  # noqa: E402
from notifier.channels.smtp import SmtpProvider  # noqa: E402
from notifier.channels.twilio import TwilioProvider  # noqa: E402
from notifier.delivery.dispatch import Dispatcher  # noqa: E402
from notifier.residents.importer import import_residents  # noqa: E402
from notifier.rules.load import find_rule  # noqa: E402
from notifier.status import Channel  # noqa: E402
from tests.support.aliyun_server import AliyunServer  # noqa: E402
from tests.support.tencent_server import TencentServer  # noqa: E402
from tests.support.twilio_server import ACCOUNT_SID, API, AUTH_TOKEN, TwilioServer  # noqa: E402

SENDER_SMS = "+15005550006"
SENDER_EMAIL = "县民政局 <notice@example.gov.cn>"
HIGH_RATE = 1_000_000  # effectively no rate limit: the bucket is still acquired per message
ON = date(2026, 4, 1)

RULE = """\
id: bench-{channel}
item: {{title: 2026年农村危房改造补助, domain: rural_housing_repair, department: 县住房和城乡建设局,
       url: https://example.gov.cn/zwgk/2026/wf014, publish: {{from: 2026-01-01, until: 2030-12-31}},
       disclosure: public}}
parameters:
  low_income_line: {{unit: 元, reference: bench, values: {{2026-01-01: 7440}}}}
match:
  any:
    - {{field: registration, in: [rural, urban]}}
    - {{field: registration, is_missing: true}}
channels: [{channel}]
templates: {{sms: housing_repair.sms.j2, email: housing_repair.email.j2, letter: housing_repair.letter.j2}}
"""
HEADER = [
    "居民编号",
    "姓名",
    "手机号码",
    "电子邮箱",
    "家庭住址",
    "乡镇",
    "村",
    "户籍类型",
    "承包耕地面积",
    "首选通知方式",
]
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
GIVEN = ["建国", "秀英", "桂兰", "志强", "丽华", "海燕", "德明", "春梅", "国强", "玉兰", "文杰", "小红"]
TOWNSHIPS = ["城关镇", "河口乡", "石桥镇", "柳林乡"]


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def timed(n: int, seconds: float, **extra: Any) -> dict[str, Any]:
    return {"messages": n, "seconds": round(seconds, 4), "per_second": round(rate(n, seconds), 1), **extra}


# -- the project ----------------------------------------------------------------------------
def make_project(
    work: Path, n: int, channel: str, extra_toml: str, rule_extra: str = "", sms_template: str = ""
) -> tuple[App, int]:
    """A temp project with `n` residents, each with a mobile and an e-mail, a rule matching all
    of them on `channel` alone, and a run approved twice. Returns the open app and the run id."""
    if work.exists():
        shutil.rmtree(work)
    (work / "rules").mkdir(parents=True)
    shutil.copy(REPO / "rules" / "fields.yaml", work / "rules")
    rule_text = RULE.format(channel=channel) + rule_extra
    shutil.copytree(REPO / "templates", work / "templates")
    if sms_template:
        (work / "templates" / "bench.sms.j2").write_text(sms_template, encoding="utf-8")
        rule_text = rule_text.replace("sms: housing_repair.sms.j2", "sms: bench.sms.j2")
    (work / "rules" / f"bench-{channel}.yaml").write_text(rule_text, encoding="utf-8")
    (work / "notifier.toml").write_text(
        f"[quiet_hours]\nenabled = false\n[sending]\nbatch_size = 2000\n{extra_toml}", encoding="utf-8"
    )
    with (work / "residents.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for i in range(n):
            town = TOWNSHIPS[i % len(TOWNSHIPS)]
            w.writerow(
                [
                    f"R{i:07d}",
                    SURNAMES[i % len(SURNAMES)] + GIVEN[(i // len(SURNAMES)) % len(GIVEN)],
                    f"139{i:08d}",
                    f"r{i:07d}@example.com",
                    f"{town}{i % 90 + 1}组{i % 40 + 1}号",
                    town,
                    f"第{i % 12 + 1}村",
                    "农村",
                    f"{i % 9 + 1}.5",
                    "",
                ]
            )
    app = App.open(work / "notifier.toml")
    report = import_residents(app, work / "residents.csv")
    if report.imported != n:
        raise SystemExit(f"bench: imported {report.imported} of {n} residents")
    rule = find_rule(f"bench-{channel}", app.config.rules_dir, app.dictionary, app.config.templates_dir)
    created = runs.create_run(app, rule, ON, "bench")
    if created.audience != n:
        raise SystemExit(f"bench: the run has {created.audience} deliveries, expected {n}")
    runs.approve_run(app, created.run, "a1")
    runs.approve_run(app, created.run, "a2")
    return app, created.run


def dispatch(app: App, run_id: int, n: int) -> dict[str, Any]:
    dispatcher = Dispatcher(app, providers_for(app.config))
    t0 = time.perf_counter()
    report = asyncio.run(dispatcher.run(run_id))
    elapsed = time.perf_counter() - t0
    if report.sent != n:
        raise SystemExit(f"bench: the dispatcher sent {report.sent} of {n}: {report.as_json()}")
    return timed(n, elapsed)


async def bounded(n_workers: int, items: list[Any], send: Callable[[Any], Awaitable[Any]]) -> float:
    """Send every item with at most `n_workers` in flight (asyncio.gather + a semaphore)."""
    sem = asyncio.Semaphore(n_workers)

    async def one(item: Any) -> None:
        async with sem:
            await send(item)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in items))
    return time.perf_counter() - t0


def ratios(floor: dict[str, Any], **passes: dict[str, Any]) -> dict[str, float]:
    return {f"{name}_to_floor": round(p["per_second"] / floor["per_second"], 3) for name, p in passes.items()}


# -- SMS ------------------------------------------------------------------------------------
def bench_sms(work: Path, n: int, concurrency: int) -> dict[str, Any]:
    with TwilioServer() as server:
        extra = (
            f'[channels.sms]\nproviders = ["twilio"]\n[providers.twilio]\nbase_url = "{server.url}"\n'
            f'account_sid = "{ACCOUNT_SID}"\nauth_token = "{AUTH_TOKEN}"\nfrom = "{SENDER_SMS}"\n'
            f"rate_per_second = {HIGH_RATE}\nconcurrency = {concurrency}\ntimeout = 30\n"
        )
        app, run_id = make_project(work, n, "sms", extra)
        settings = app.config.provider_settings("twilio")
        try:
            disp = dispatch(app, run_id, n)
        finally:
            app.close()
        with server._lock:  # the bodies the dispatcher rendered, as the server received them
            sent = [(m.to, m.body) for m in server.messages]
            server.messages.clear()
            server.attempts.clear()
        messages = [
            OutboundMessage(
                delivery_id=i + 1,
                run_id=1,
                channel=Channel.SMS,
                resident_id=f"R{i:07d}",
                recipient=to,
                recipient_name="",
                body=body,
            )
            for i, (to, body) in enumerate(sent)
        ]

        async def provider_pass() -> float:
            p = TwilioProvider("twilio", settings)
            await p.open()
            try:
                return await bounded(p.concurrency, messages, p.send)
            finally:
                await p.close()

        t = asyncio.run(provider_pass())
        if len(server.messages) != n:
            raise SystemExit(f"bench: the server took {len(server.messages)} of {n} provider sends")
        prov = timed(n, t)
        server.messages.clear()

        url = f"{server.url}{API}/Accounts/{ACCOUNT_SID}/Messages.json"
        auth = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode("ascii")

        async def floor_pass() -> float:
            async with aiohttp.ClientSession(headers={"Authorization": auth}) as session:

                async def post(m: OutboundMessage) -> None:
                    async with session.post(
                        url, data={"To": m.recipient, "From": SENDER_SMS, "Body": m.body}
                    ) as r:
                        answer = await r.json()
                        if r.status != 201 or not answer.get("sid"):
                            raise SystemExit(f"bench: floor POST answered {r.status}")

                return await bounded(concurrency, messages, post)

        t = asyncio.run(floor_pass())
        if len(server.messages) != n:
            raise SystemExit(f"bench: the server took {len(server.messages)} of {n} floor POSTs")
        floor = timed(n, t)
    return {
        "messages": n,
        "concurrency": concurrency,
        "dispatcher": disp,
        "provider": prov,
        "floor": floor,
        **ratios(floor, provider=prov, dispatcher=disp),
    }


# -- Aliyun SMS -----------------------------------------------------------------------------
ALIYUN_CODE, ALIYUN_SIGN = "SMS_4870001", "县住房和城乡建设局"
ALIYUN_TEXT = "${name}您好：您家${item}已公示，补助标准${amount}。核实请拨打12345。回TD退订"
ALIYUN_SMS = (
    "【县住房和城乡建设局】{{ resident.name }}您好：您家{{ item.title }}已公示，补助标准"
    "{{ params.low_income_line | money }}。核实请拨打12345。回TD退订"
)
ALIYUN_RULE = """sms_templates:
  aliyun:
    code: SMS_4870001
    sign: 县住房和城乡建设局
    text: "${name}您好：您家${item}已公示，补助标准${amount}。核实请拨打12345。回TD退订"
    params:
      name: "{{ resident.name }}"
      item: "{{ item.title }}"
      amount: "{{ params.low_income_line | money }}"
"""


def bench_aliyun(work: Path, n: int, concurrency: int) -> dict[str, Any]:
    from alibabacloud_dysmsapi20170525 import models as sms
    from alibabacloud_dysmsapi20170525.client import Client
    from alibabacloud_tea_openapi import models as openapi
    from darabonba.runtime import RuntimeOptions

    with AliyunServer() as server:
        server.register(ALIYUN_CODE, ALIYUN_TEXT)

        def one_pass(name: str, batch: bool) -> dict[str, Any]:
            table = server.table(rate_per_second=0, concurrency=concurrency, timeout=30, batch=batch)
            extra = '[channels.sms]\nproviders = ["aliyun"]\n[providers.aliyun]\n' + "\n".join(
                f"{k} = {json.dumps(v)}" for k, v in table.items()
            )
            app, run_id = make_project(work / name, n, "sms", extra + "\n", ALIYUN_RULE, ALIYUN_SMS)
            try:
                before = len(server.messages)
                result = dispatch(app, run_id, n)
            finally:
                app.close()
            if len(server.messages) - before != n:
                raise SystemExit(f"bench: the Aliyun server took {len(server.messages) - before} of {n}")
            return result | {"requests": sum(1 for _ in server.calls)}

        batched = one_pass("batched", True)
        server.calls.clear()
        single = one_pass("single", False)
        server.calls.clear()
        sent = list(server.messages[:n])
        server.messages.clear()

        client = Client(
            openapi.Config(
                access_key_id=server.access_key_id,
                access_key_secret=server.access_key_secret,
                endpoint=server.endpoint,
                protocol="http",
            )
        )
        runtime = RuntimeOptions(autoretry=False, max_attempts=0, connect_timeout=2000, read_timeout=30000)
        chunks = [sent[i : i + 100] for i in range(0, len(sent), 100)]

        def call(chunk: list[Any]) -> None:
            request = sms.SendBatchSmsRequest(
                phone_number_json=json.dumps([m.phone for m in chunk]),
                sign_name_json=json.dumps([m.sign for m in chunk], ensure_ascii=False),
                template_code=ALIYUN_CODE,
                template_param_json=json.dumps([m.params for m in chunk], ensure_ascii=False),
            )
            answer = client.send_batch_sms_with_options(request, runtime)
            if answer.body.code != "OK":
                raise SystemExit(f"bench: the floor's SendBatchSms answered {answer.body.code}")

        async def floor_pass() -> float:
            return await bounded(concurrency, chunks, lambda c: asyncio.to_thread(call, c))

        t = asyncio.run(floor_pass())
        if len(server.messages) != n:
            raise SystemExit(f"bench: the Aliyun server took {len(server.messages)} of {n} floor messages")
        floor = timed(n, t, requests=len(chunks))
    return {
        "messages": n,
        "concurrency": concurrency,
        "dispatcher_batched": batched,
        "dispatcher_one_per_request": single,
        "floor": floor,
        **ratios(floor, dispatcher_batched=batched, dispatcher_one_per_request=single),
    }


# -- Tencent Cloud SMS ----------------------------------------------------------------------
TENCENT_ID, TENCENT_SIGN = "2100872", "县住房和城乡建设局"
TENCENT_SAME = (
    "您家{1}已公示，补助标准{2}。核实请拨打12345。回TD退订",
    ["item.title", "params.low_income_line | money"],
)
TENCENT_NAMED = (
    "{1}（居民编号{2}）您好：您家{3}已公示，补助标准{4}。核实请拨打12345。回TD退订",
    ["resident.name", "resident.resident_id", "item.title", "params.low_income_line | money"],
)


def tencent_rule(text: str, exprs: list[str]) -> tuple[str, str]:
    """(the rule's sms_templates block, its Jinja SMS template) for a Tencent text."""
    params = "".join(f'      {i}: "{{{{ {e} }}}}"\n' for i, e in enumerate(exprs, 1))
    block = f'sms_templates:\n  tencent:\n    code: "{TENCENT_ID}"\n    sign: {TENCENT_SIGN}\n'
    block += f'    text: "{text}"\n    params:\n{params}'
    jinja = text
    for i, e in enumerate(exprs, 1):
        jinja = jinja.replace(f"{{{i}}}", f"{{{{ {e} }}}}")
    return block, f"【{TENCENT_SIGN}】{jinja}"


def bench_tencent(work: Path, n: int, concurrency: int) -> dict[str, Any]:
    from tencentcloud.common.credential import Credential
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile
    from tencentcloud.sms.v20210111 import models
    from tencentcloud.sms.v20210111.sms_client import SmsClient

    with TencentServer() as server:

        def one_pass(name: str, text: str, exprs: list[str]) -> dict[str, Any]:
            server.register(TENCENT_ID, text, TENCENT_SIGN)
            table = server.table(rate_per_second=0, per_number_seconds=0, concurrency=concurrency, timeout=30)
            extra = '[channels.sms]\nproviders = ["tencent"]\n[providers.tencent]\n' + "\n".join(
                f"{k} = {json.dumps(v)}" for k, v in table.items()
            )
            block, jinja = tencent_rule(text, exprs)
            app, run_id = make_project(work / name, n, "sms", extra + "\n", block, jinja)
            try:
                before, calls = len(server.messages), len(server.calls)
                result = dispatch(app, run_id, n)
            finally:
                app.close()
            if len(server.messages) - before != n:
                raise SystemExit(f"bench: the Tencent server took {len(server.messages) - before} of {n}")
            return result | {"requests": len(server.calls) - calls}

        batched = one_pass("batched", *TENCENT_SAME)
        single = one_pass("single", *TENCENT_NAMED)
        server.register(TENCENT_ID, TENCENT_SAME[0], TENCENT_SIGN)
        sent = [m for m in server.messages[:n]]
        server.messages.clear()
        values = sent[0].params
        chunks = [[m.phone for m in sent[i : i + 200]] for i in range(0, len(sent), 200)]
        local = threading.local()

        def client() -> SmsClient:
            if not hasattr(local, "client"):
                http = HttpProfile(protocol="http", endpoint=server.endpoint, reqTimeout=30)
                profile = ClientProfile(httpProfile=http, disable_region_breaker=True, retryer=None)
                local.client = SmsClient(
                    Credential(server.secret_id, server.secret_key), "ap-guangzhou", profile
                )
            return local.client

        def call(phones: list[str]) -> None:
            request = models.SendSmsRequest()
            request.SmsSdkAppId, request.TemplateId, request.SignName = (
                server.sdk_app_id,
                TENCENT_ID,
                TENCENT_SIGN,
            )
            request.TemplateParamSet, request.PhoneNumberSet = values, phones
            answer = client().SendSms(request)
            if any(status.Code != "Ok" for status in answer.SendStatusSet):
                raise SystemExit("bench: the floor's SendSms refused a number")

        async def floor_pass() -> float:
            loop = asyncio.get_running_loop()
            with ThreadPoolExecutor(concurrency) as pool:
                return await bounded(concurrency, chunks, lambda c: loop.run_in_executor(pool, call, c))

        t = asyncio.run(floor_pass())
        if len(server.messages) != n:
            raise SystemExit(f"bench: the Tencent server took {len(server.messages)} of {n} floor messages")
        floor = timed(n, t, requests=len(chunks))
    return {
        "messages": n,
        "concurrency": concurrency,
        "dispatcher_batched": batched,
        "dispatcher_one_per_request": single,
        "floor": floor,
        **ratios(floor, dispatcher_batched=batched, dispatcher_one_per_request=single),
    }


# -- e-mail ---------------------------------------------------------------------------------
class Sink:
    """An SMTP server's handler that accepts everything; keeps what it got while `keep`."""

    def __init__(self) -> None:
        self.keep = False
        self.count = 0
        self.received: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count += 1
        if self.keep:
            self.received.append(envelope.content)
        return "250 OK"


def _outbound(i: int, raw: bytes) -> OutboundMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    name, addr = parseaddr(str(msg["To"]))
    plain, html = msg.get_body(("plain",)), msg.get_body(("html",))
    return OutboundMessage(
        delivery_id=i + 1,
        run_id=1,
        channel=Channel.EMAIL,
        resident_id=f"R{i:07d}",
        recipient=addr,
        recipient_name=name,
        body=plain.get_content() if plain else "",
        subject=str(msg["Subject"]),
        html=html.get_content() if html else None,
    )


def bench_email(work: Path, n: int, connections: int) -> dict[str, Any]:
    sink, port = Sink(), free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        extra = (
            f'[channels.email]\nproviders = ["smtp"]\n[providers.smtp]\nhost = "127.0.0.1"\nport = {port}\n'
            f'from = "{SENDER_EMAIL}"\nrate_per_second = {HIGH_RATE}\n'
            f"connections = {connections}\ntimeout = 30\n"
        )
        app, run_id = make_project(work, n, "email", extra)
        settings = app.config.provider_settings("smtp")
        base_dir = app.config.base_dir
        sink.keep = True
        try:
            disp = dispatch(app, run_id, n)
        finally:
            app.close()
            sink.keep = False
        if sink.count != n:
            raise SystemExit(f"bench: the SMTP server took {sink.count} of {n} dispatcher messages")
        messages = [_outbound(i, raw) for i, raw in enumerate(sink.received)]
        sink.received.clear()

        def provider_pass(pool: int) -> dict[str, Any]:
            async def go() -> float:
                p = SmtpProvider("smtp", {**settings, "connections": pool}, ProviderContext(base_dir))
                try:
                    return await bounded(p.concurrency, messages, p.send)
                finally:
                    await p.close()

            before = sink.count
            t = asyncio.run(go())
            if sink.count - before != n:
                raise SystemExit(
                    f"bench: the SMTP server took {sink.count - before} of {n} provider messages"
                )
            return timed(n, t, connections=pool)

        prov = provider_pass(connections)
        prov1 = provider_pass(1)

        async def floor_pass() -> float:
            t0 = time.perf_counter()
            smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=30)
            await smtp.connect()
            for m in messages:
                msg = EmailMessage()
                msg["From"] = SENDER_EMAIL
                msg["To"] = formataddr((m.recipient_name, m.recipient))
                msg["Subject"] = m.subject or ""
                msg.set_content(m.body, charset="utf-8")
                if m.html:
                    msg.add_alternative(m.html, subtype="html", charset="utf-8")
                await smtp.send_message(msg)
            elapsed = time.perf_counter() - t0
            await smtp.quit()
            return elapsed

        before = sink.count
        t = asyncio.run(floor_pass())
        if sink.count - before != n:
            raise SystemExit(f"bench: the SMTP server took {sink.count - before} of {n} floor messages")
        floor = timed(n, t, connections=1)
    finally:
        controller.stop()
    return {
        "messages": n,
        "dispatcher": disp,
        "provider": prov,
        "provider_1conn": prov1,
        "floor": floor,
        **ratios(floor, provider=prov, provider_1conn=prov1, dispatcher=disp),
    }


# -- token bucket ---------------------------------------------------------------------------
def max_in_window(stamps: list[float], width: float = 1.0) -> int:
    best, lo = 0, 0
    for hi, t in enumerate(stamps):
        while t - stamps[lo] >= width:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def bench_bucket(r: float, seconds: float) -> dict[str, Any]:
    workers = max(8, int(r * 2))  # always more waiting acquirers than tokens per second

    async def go() -> tuple[TokenBucket, float, list[float]]:
        bucket = TokenBucket(r)
        stamps: list[float] = []
        t0 = time.monotonic()

        async def acquirer() -> None:
            while True:
                await bucket.acquire()
                stamps.append(time.monotonic() - t0)

        tasks = [asyncio.create_task(acquirer()) for _ in range(workers)]
        await asyncio.sleep(seconds)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return bucket, t0, [s for s in stamps if s < seconds]

    bucket, _, stamps = asyncio.run(go())
    count = len(stamps)
    achieved = count / seconds
    # A burst > 1 lets up to `capacity` go at once after idling; the default (1) paces from the start.
    steady = [s for s in stamps if s >= 1.0]
    steady_rate = len(steady) / (seconds - 1.0) if seconds > 1 else float("nan")
    return {
        "rate": r,
        "seconds": seconds,
        "acquirers": workers,
        "burst": bucket.capacity,
        "acquired": count,
        "achieved_per_second": round(achieved, 3),
        "error_percent": round((achieved - r) / r * 100, 2),
        "steady_per_second": round(steady_rate, 3),
        "steady_error_percent": round((steady_rate - r) / r * 100, 2),
        "max_in_1s_window": max_in_window(stamps),
        "max_in_1s_window_after_first_second": max_in_window(steady),
    }


# -- main -----------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sms", type=int, default=5_000, help="SMS messages (0 skips the part)")
    ap.add_argument("--aliyun", type=int, default=5_000, help="Aliyun SMS messages (0 skips the part)")
    ap.add_argument("--aliyun-concurrency", type=int, default=10, help="Aliyun requests in flight")
    ap.add_argument("--tencent", type=int, default=5_000, help="Tencent SMS messages (0 skips the part)")
    ap.add_argument("--tencent-concurrency", type=int, default=10, help="Tencent requests in flight")
    ap.add_argument("--email", type=int, default=5_000, help="e-mail messages (0 skips the part)")
    ap.add_argument(
        "--bucket-seconds", type=float, default=30.0, help="token bucket run length (0 skips the part)"
    )
    ap.add_argument("--bucket-rate", type=float, default=50.0)
    ap.add_argument(
        "--sms-concurrency", type=int, default=10, help="Twilio requests in flight (provider and floor)"
    )
    ap.add_argument("--smtp-connections", type=int, default=4, help="SmtpProvider pool size")
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="notifier-bench-dispatch-"))
    work.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {}
    try:
        if args.sms > 0:
            out["sms"] = bench_sms(work / "sms", args.sms, args.sms_concurrency)
        if args.aliyun > 0:
            out["aliyun"] = bench_aliyun(work / "aliyun", args.aliyun, args.aliyun_concurrency)
        if args.tencent > 0:
            out["tencent"] = bench_tencent(work / "tencent", args.tencent, args.tencent_concurrency)
        if args.email > 0:
            out["email"] = bench_email(work / "email", args.email, args.smtp_connections)
        if args.bucket_seconds > 0:
            out["bucket"] = bench_bucket(args.bucket_rate, args.bucket_seconds)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    if args.json:
        print(json.dumps(out, ensure_ascii=False))
        return

    def line(label: str, p: dict[str, Any], ratio: float | None = None) -> str:
        tail = f"   ratio {ratio:.2f}" if ratio is not None else ""
        return (
            f"  {label:24s} {p['messages']:>7,} in {p['seconds']:7.2f} s = {p['per_second']:>8,.0f}/s{tail}"
        )

    if "sms" in out:
        s = out["sms"]
        print(f"sms (twilio, local server, {s['concurrency']} in flight)")
        print(line("dispatcher end to end", s["dispatcher"], s["dispatcher_to_floor"]))
        print(line("TwilioProvider.send", s["provider"], s["provider_to_floor"]))
        print(line("floor: bare aiohttp POST", s["floor"]))
    if "aliyun" in out:
        a = out["aliyun"]
        print(f"sms (aliyun, local server, official SDK, {a['concurrency']} requests in flight)")
        print(line("dispatcher, batches", a["dispatcher_batched"], a["dispatcher_batched_to_floor"]))
        print(
            line(
                "dispatcher, 1 per request",
                a["dispatcher_one_per_request"],
                a["dispatcher_one_per_request_to_floor"],
            )
        )
        print(line("floor: bare SDK batches", a["floor"]))
    if "tencent" in out:
        t = out["tencent"]
        print(f"sms (tencent, local server, official SDK, {t['concurrency']} requests in flight)")
        print(line("dispatcher, batches", t["dispatcher_batched"], t["dispatcher_batched_to_floor"]))
        print(
            line(
                "dispatcher, 1 per request",
                t["dispatcher_one_per_request"],
                t["dispatcher_one_per_request_to_floor"],
            )
        )
        print(line("floor: bare SDK batches", t["floor"]))
    if "email" in out:
        e = out["email"]
        print("email (smtp, local aiosmtpd)")
        print(
            line(
                f"dispatcher ({e['provider']['connections']} conns)",
                e["dispatcher"],
                e["dispatcher_to_floor"],
            )
        )
        print(
            line(
                f"SmtpProvider ({e['provider']['connections']} conns)", e["provider"], e["provider_to_floor"]
            )
        )
        print(line("SmtpProvider (1 conn)", e["provider_1conn"], e["provider_1conn_to_floor"]))
        print(line("floor: aiosmtplib 1 conn", e["floor"]))
    if "bucket" in out:
        b = out["bucket"]
        print(
            f"token bucket ({b['rate']:g}/s, burst {b['burst']:g}, {b['acquirers']} acquirers, "
            f"{b['seconds']:g} s)"
        )
        print(
            f"  achieved {b['achieved_per_second']:.2f}/s ({b['acquired']:,} acquired), "
            f"error {b['error_percent']:+.2f}%"
        )
        print(
            f"  after the first second {b['steady_per_second']:.2f}/s, "
            f"error {b['steady_error_percent']:+.2f}%"
        )
        print(
            f"  max in any 1 s window {b['max_in_1s_window']} "
            f"(after the first second {b['max_in_1s_window_after_first_second']})"
        )


if __name__ == "__main__":
    main()
