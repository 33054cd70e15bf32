"""The provider contract, one suite for every kind in the registry, each against the real thing:
files on disk (outbox, letter), a real aiosmtpd server (smtp), the Twilio-compatible server over
real HTTP through the official client (twilio).

What the dispatcher relies on: `send` returns a SendResult with the kind's status; a refusal for
good raises PermanentError, one for now TransientError, a timeout AmbiguousError (where the
provider can time out); `lookup` finds a sent message and returns None for one never sent (where
it can look up); close after open is clean; `describe()` holds no secret. A full disk is /dev/full;
kinds that write local files have no timeout to test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from notifier.channels.base import OutboundMessage, Provider, ProviderContext
from notifier.channels.registry import KINDS
from notifier.channels.templated import TemplateCall
from notifier.errors import AmbiguousError, PermanentError, ProviderError, TransientError
from notifier.status import Channel, DeliveryStatus

from ..support import tencent_server
from ..support.aliyun_server import AliyunServer
from ..support.aliyun_server import Fault as AliyunFault
from ..support.smtp_server import SmtpServer
from ..support.tencent_server import TencentServer
from ..support.twilio_server import ACCOUNT_SID, AUTH_TOKEN, Fault, TwilioServer

STALL = 2.0  # seconds a server sits on an answer; the providers under test give up after TIMEOUT
TIMEOUT = 0.4
TEMPLATE_TEXT = "第${n}条通知：补贴已发放。回TD退订"  # registered at the local servers of template kinds


def _templates(i: int) -> dict[str, TemplateCall]:
    """The registered template of message i at every kind that sends templates only."""
    return {
        kind: TemplateCall("SMS_0001", "某某县民政局", (("n", str(i)),)) for kind in ("aliyun", "tencent")
    }


@dataclass
class Harness:
    """One kind, ready to send: how to make it refuse, stall or reveal its secrets."""

    provider: Provider
    channel: Channel
    accepted: DeliveryStatus
    refuse_for_good: Callable[[], None] | None = None
    refuse_for_now: Callable[[], None] | None = None
    stalled: Callable[[], Provider] | None = None  # a provider with a short timeout, its next send stalled
    with_secrets: Callable[[], tuple[Provider, list[str]]] | None = None
    templates: Mapping[str, TemplateCall] = field(
        default_factory=dict
    )  # registered templates (aliyun, tencent)

    def message(self, i: int = 1, recipient: str | None = None) -> OutboundMessage:
        to = (
            recipient
            or {
                Channel.SMS: f"+86138000000{i:02d}",
                Channel.EMAIL: f"r{i}@example.com",
                Channel.LETTER: f"东村{i}号",
            }[self.channel]
        )
        return OutboundMessage(
            delivery_id=i,
            run_id=1,
            channel=self.channel,
            resident_id=f"R{i}",
            recipient=to,
            recipient_name=f"居民{i}",
            body=f"第{i}条通知：补贴已发放。回TD退订",
            subject="通知" if self.channel is Channel.EMAIL else None,
            meta={"township": "城关镇", "village": "东村", "title": "通知"},
            templates={**_templates(i), **self.templates},  # a harness's own win
        )


def _blocked(folder: Path) -> Callable[[], None]:
    """Make the run's folder a file: every write under it fails for good (not a folder)."""

    def block() -> None:
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.write_text("not a folder", encoding="utf-8")

    return block


class _StallingSmtp(SmtpServer):
    """The support SMTP server plus an answer that never comes in time ("slow@END": the message
    is taken, the answer is late)."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.plan[:1] == ["slow@END"]:
            self.plan.pop(0)
            await asyncio.sleep(STALL)
            return "250 OK"
        return await super().handle_DATA(server, session, envelope)


def _disk_full(tmp: Path) -> Callable[[], None] | None:
    """Point the file the provider writes first at /dev/full: the write fails with ENOSPC."""
    if not Path("/dev/full").exists():
        return None

    def fill() -> None:
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.symlink_to("/dev/full")

    return fill


async def _files(kind: str, tmp_path: Path) -> AsyncIterator[Harness]:
    p = KINDS[kind].provider(kind, {"dir": "out"}, ProviderContext(tmp_path))
    run = tmp_path / "out" / "run-1"
    first = run / "00000001.letter.txt.tmp" if kind == "outbox" else run / "pages" / "00000001.html.tmp"
    yield Harness(
        p,
        Channel.LETTER,
        DeliveryStatus.DELIVERED if kind == "outbox" else DeliveryStatus.SENT,
        refuse_for_good=_blocked(run),
        refuse_for_now=_disk_full(first),
    )


async def _smtp(tmp_path: Path) -> AsyncIterator[Harness]:
    handler = _StallingSmtp().__enter__()
    table = {"port": handler.port, "connections": 1, "timeout": 5}

    def plan(fault: str) -> Callable[[], None]:
        return lambda: handler.plan.append(fault)

    def stalled() -> Provider:
        handler.plan.append("slow@END")
        return KINDS["smtp"].provider("smtp", table | {"timeout": TIMEOUT})

    def with_secrets() -> tuple[Provider, list[str]]:
        secret = "smtp-password-do-not-print"
        return KINDS["smtp"].provider("smtp", table | {"username": "notice", "password": secret}), [secret]

    try:
        yield Harness(
            KINDS["smtp"].provider("smtp", table),
            Channel.EMAIL,
            DeliveryStatus.SENT,
            refuse_for_good=plan("550@RCPT"),
            refuse_for_now=plan("451@RCPT"),
            stalled=stalled,
            with_secrets=with_secrets,
        )
    finally:
        handler.__exit__()


async def _twilio(tmp_path: Path) -> AsyncIterator[Harness]:
    async with TwilioServer() as server:
        table = {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "from": "+15005550006"}
        table |= {"base_url": server.url, "timeout": 5}

        def plan(fault: Fault) -> Callable[[], None]:
            return lambda: server.fail_next(fault)

        def stalled() -> Provider:
            server.fail_next(Fault.slow(STALL))
            return KINDS["twilio"].provider("twilio", table | {"timeout": TIMEOUT})

        def with_secrets() -> tuple[Provider, list[str]]:
            return KINDS["twilio"].provider("twilio", table), [AUTH_TOKEN]

        yield Harness(
            KINDS["twilio"].provider("twilio", table),
            Channel.SMS,
            DeliveryStatus.SENT,
            refuse_for_good=plan(Fault.invalid_number()),
            refuse_for_now=plan(Fault.too_many_requests()),
            stalled=stalled,
            with_secrets=with_secrets,
        )


async def _tencent(tmp_path: Path) -> AsyncIterator[Harness]:
    async with TencentServer() as server:
        table = {
            "secret_id": tencent_server.SECRET_ID,
            "secret_key": tencent_server.SECRET_KEY,
            "sdk_app_id": tencent_server.SDK_APP_ID,
            "endpoint": server.endpoint,
            "protocol": "http",
            "timeout": 5,
        }
        call = TemplateCall(
            tencent_server.TEMPLATE_ID, tencent_server.SIGN, (("name", "居民"), ("item", "补贴"))
        )

        def refuse(code: str) -> Callable[[], None]:
            return lambda: server.fail_next(tencent_server.Fault.error(code))

        def stalled() -> Provider:
            server.fail_next(tencent_server.Fault.slow(STALL))
            return KINDS["tencent"].provider("tencent", table | {"timeout": TIMEOUT})

        def with_secrets() -> tuple[Provider, list[str]]:
            return KINDS["tencent"].provider("tencent", table), [tencent_server.SECRET_KEY]

        yield Harness(
            KINDS["tencent"].provider("tencent", table),
            Channel.SMS,
            DeliveryStatus.SENT,
            refuse_for_good=refuse("InvalidParameterValue.IncorrectPhoneNumber"),
            refuse_for_now=refuse("LimitExceeded.DeliveryFrequencyLimit"),
            stalled=stalled,
            with_secrets=with_secrets,
            templates={"tencent": call},
        )


async def _aliyun(tmp_path: Path) -> AsyncIterator[Harness]:
    async with AliyunServer() as server:
        server.register("SMS_0001", TEMPLATE_TEXT)
        table = server.table()

        def plan(fault: AliyunFault) -> Callable[[], None]:
            return lambda: server.fail_next(fault)

        def stalled() -> Provider:
            server.fail_next(AliyunFault.slow(STALL))
            return KINDS["aliyun"].provider("aliyun", table | {"timeout": TIMEOUT})

        def with_secrets() -> tuple[Provider, list[str]]:
            return KINDS["aliyun"].provider("aliyun", table), [server.access_key_secret]

        yield Harness(
            KINDS["aliyun"].provider("aliyun", table),
            Channel.SMS,
            DeliveryStatus.SENT,
            refuse_for_good=plan(AliyunFault.refuse("isv.MOBILE_NUMBER_ILLEGAL")),
            refuse_for_now=plan(AliyunFault.throttled()),
            stalled=stalled,
            with_secrets=with_secrets,
        )


FILE_KINDS = frozenset({"outbox", "letter"})
HARNESSES: dict[str, Callable[[Path], AsyncIterator[Harness]]] = {
    "outbox": lambda tmp: _files("outbox", tmp),
    "letter": lambda tmp: _files("letter", tmp),
    "smtp": _smtp,
    "twilio": _twilio,
    "aliyun": _aliyun,
    "tencent": _tencent,
}


def test_every_registered_kind_is_in_this_suite() -> None:
    assert set(HARNESSES) == set(KINDS)  # a new kind: add its harness above


@pytest.fixture(params=sorted(KINDS))
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    made = HARNESSES[request.param](tmp_path)
    h = await anext(made)
    await h.provider.open()
    try:
        yield h
    finally:
        await h.provider.close()
        await made.aclose()


async def _raised(provider: Provider, message: OutboundMessage) -> ProviderError:
    try:
        await provider.send(message)
    except ProviderError as exc:
        return exc
    raise AssertionError(f"{provider.kind}: send did not raise")


async def test_send_returns_the_kinds_status(harness: Harness) -> None:
    result = await harness.provider.send(harness.message())
    assert result.status is harness.accepted
    assert result.provider_message_id
    assert harness.channel in harness.provider.channels


async def test_a_refusal_for_good_is_permanent(harness: Harness) -> None:
    assert harness.refuse_for_good is not None, f"{harness.provider.kind}: give its harness a refusal"
    harness.refuse_for_good()
    err = await _raised(harness.provider, harness.message())
    assert type(err) is PermanentError and not err.retryable and not err.ambiguous
    assert err.provider == harness.provider.name and err.code


async def test_a_refusal_for_now_is_transient(harness: Harness) -> None:
    assert harness.refuse_for_now is not None, f"{harness.provider.kind}: needs /dev/full to fill its disk"
    harness.refuse_for_now()
    err = await _raised(harness.provider, harness.message())
    assert type(err) is TransientError and err.retryable and err.code
    assert (await harness.provider.send(harness.message())).status is harness.accepted  # and then it passes


async def test_a_timeout_is_ambiguous(harness: Harness) -> None:
    if harness.stalled is None:  # writes local files: no answer to wait for, so nothing to time out
        assert harness.provider.kind in FILE_KINDS
        return
    provider = harness.stalled()
    try:
        err = await _raised(provider, harness.message())
    finally:
        await provider.close()
    assert type(err) is AmbiguousError and err.ambiguous and not err.retryable


async def test_lookup_finds_what_was_sent_and_nothing_else(harness: Harness) -> None:
    p = harness.provider
    if not p.can_lookup:
        with pytest.raises(NotImplementedError):
            await p.lookup(harness.message(), datetime.now(timezone.utc))
        assert p.idempotent or p.kind == "smtp"  # reconciliation needs one or the other, or asks a person
        return
    since = datetime.now(timezone.utc) - timedelta(minutes=1)
    sent = await p.send(harness.message(1))
    found = await p.lookup(harness.message(1), since)
    assert found is not None and found.provider_message_id == sent.provider_message_id
    assert found.status is DeliveryStatus.SENT
    assert await p.lookup(harness.message(2), since) is None


async def test_close_after_open_is_clean_and_repeatable(harness: Harness) -> None:
    p = harness.provider
    await p.send(harness.message())
    await p.close()
    await p.close()
    await p.open()  # and it can be opened again
    assert (await p.send(harness.message(2))).status is harness.accepted


async def test_describe_holds_no_secret(harness: Harness) -> None:
    provider, secrets = harness.with_secrets() if harness.with_secrets else (harness.provider, [])
    text = provider.describe()
    assert text and all(s not in text for s in secrets)
