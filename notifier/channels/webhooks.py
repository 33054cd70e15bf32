"""The incoming side of a provider package: what a provider's webhooks must answer.

web.py owns the flow, the same for every provider: the request is read (size-capped) into a
framework-free WebhookRequest, the provider `verify`s it (its signature scheme, compared in
constant time) and gets back the fields or a Refusal, then `parse_status` / `parse_inbound` turn
the fields into provider-neutral DeliveryEvents / an InboundMessage, which receipts.py and
optouts.py apply. A provider fills only these hooks; nothing is believed before `verify` is.
Routes are `/<kind>/status` and, where the provider forwards replies, `/<kind>/inbound`.
"""

from __future__ import annotations

import abc
import hmac
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar
from urllib.parse import parse_qsl

from .base import DeliveryEvent, InboundMessage

FORM = "application/x-www-form-urlencoded"


class Hook(StrEnum):
    STATUS = "status"  # delivery receipts
    INBOUND = "inbound"  # messages residents send us


@dataclass(frozen=True)
class WebhookRequest:
    """One request as the provider sent it. `url` is the URL it called (the public base URL +
    path + query when this process sits behind a proxy): what a signature covers."""

    url: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # names in lower case
    body: bytes
    client: str = ""  # the peer's IP address (uvicorn puts X-Forwarded-For's here behind a trusted proxy)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def form(self) -> dict[str, str]:
        """The body's form fields (last value wins); ValueError if it is not UTF-8 form text."""
        return dict(parse_qsl(self.body.decode("utf-8"), keep_blank_values=True, errors="strict"))


@dataclass(frozen=True)
class Verified:
    """A request proven to come from the provider configured as `provider`, and its fields."""

    provider: str
    fields: dict[str, str]


@dataclass(frozen=True)
class Refusal:
    """Why a request is not believed: answered with `status` and `message`, nothing touched."""

    status: int
    message: str


@dataclass(frozen=True)
class Reply:
    """The body a provider expects in answer (e.g. TwiML for Twilio's inbound messages)."""

    body: str = ""
    media_type: str = "text/plain"
    status: int = 200


class Webhooks(abc.ABC):
    """One provider kind's webhooks, for every configured provider of that kind (several accounts
    share one route; `verify` says whose credentials the request proved). Built from the kind's
    `[providers.NAME]` tables (secrets resolved) and the problems met resolving them."""

    kind: ClassVar[str]
    inbound_reply: ClassVar[Reply | None] = None  # None: the provider forwards no replies
    status_reply: ClassVar[Reply | None] = None  # None: answer with the receipt's outcome as JSON

    def __init__(
        self, tables: Mapping[str, Mapping[str, Any]], problems: Sequence[str] = (), where: str = "config"
    ) -> None:
        self.problems = list(problems)

    def routes(self) -> dict[str, Hook]:
        hooks = [Hook.STATUS] + ([Hook.INBOUND] if self.inbound_reply is not None else [])
        return {f"/{self.kind}/{h.value}": h for h in hooks}

    @property
    @abc.abstractmethod
    def why_disabled(self) -> str:
        """Why no request can be verified (no credentials configured), or ""."""

    def public_base(self) -> str:
        """The base URL the provider calls, if the provider's settings say (else "")."""
        return ""

    @abc.abstractmethod
    def verify(self, request: WebhookRequest) -> Verified | Refusal: ...

    @abc.abstractmethod
    def parse_status(self, verified: Verified, request: WebhookRequest) -> list[DeliveryEvent]:
        """The delivery events of a status callback; InputError names what is missing or wrong."""

    def parse_inbound(self, verified: Verified) -> InboundMessage:
        """The message of an inbound callback; InputError names what is missing or wrong."""
        raise NotImplementedError

    def parse_inbounds(self, verified: Verified) -> list[InboundMessage]:
        """Every message of an inbound callback (a provider pushing several at once overrides it)."""
        return [self.parse_inbound(verified)]


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class PathTokens:
    """Who may push when the provider signs nothing (Aliyun, Tencent): the secret last part of
    the URL path, compared in constant time with each configured provider's token, and where
    configured the caller's network. Each provider words its own refusals."""

    def __init__(self) -> None:
        self._entries: list[tuple[str, bytes, list[Network]]] = []

    def add(self, provider: str, token: str, networks: list[Network]) -> None:
        self._entries.append((provider, token.encode("utf-8"), networks))

    def __bool__(self) -> bool:
        return bool(self._entries)

    def find(self, token: str) -> tuple[str, list[Network]] | None:
        """(provider, its allowed networks; empty: any) of the token, or None."""
        given = token.encode("utf-8")
        for provider, secret, networks in self._entries:
            if hmac.compare_digest(given, secret):
                return provider, networks
        return None


def from_networks(client: str, networks: Sequence[Network]) -> bool:
    """Whether the caller's address lies in one of `networks` (an unreadable address: no)."""
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return False
    return any(address in n for n in networks)
