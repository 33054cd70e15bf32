"""What a run froze when it was created (`runs.snapshot`), as one typed value.

Run creation writes it (`to_json`); the dispatcher's claim gates, channel fallback, `send`'s
idle reasons and `runs show` read it back (`from_json`), so no stage re-parses the JSON by key.
Reading is tolerant: a snapshot stored by an older version may lack keys, which then take
their defaults. The publication-window gate lives here, once, for every stage that asks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

from ..rules.compile import params_in_force
from ..rules.model import ChangeTemplates, Item, Rule
from ..status import Channel


@dataclass(frozen=True)
class PublicationWindow:
    """The days an item is published (either end may be open): notices go out only inside."""

    start: date | None = None
    until: date | None = None

    @classmethod
    def of(cls, item: Item) -> PublicationWindow:
        return cls(item.publish_from, item.publish_until)

    def before(self, day: date) -> bool:
        return self.start is not None and day < self.start

    def after(self, day: date) -> bool:
        return self.until is not None and day > self.until

    def contains(self, day: date) -> bool:
        return not (self.before(day) or self.after(day))

    def describe(self) -> str:
        ends = (d.isoformat() if d else "…" for d in (self.start, self.until))
        return " to ".join(ends)


class GateState(StrEnum):
    OPEN = "open"  # deliveries may go out today
    WAITING = "waiting"  # not yet: the window opens later
    CLOSED = "closed"  # never again: pending deliveries are skipped


@dataclass(frozen=True)
class Gate:
    """Whether a run's deliveries may go out on a day; `reason` says why not (for a closed gate
    it is what the skipped deliveries record), `message` says it to the person who asked."""

    state: GateState
    reason: str = ""
    message: str = ""


OPEN = Gate(GateState.OPEN)


@dataclass(frozen=True)
class ItemSnapshot:
    """The disclosed item as templates saw it (item_context, in JSON form)."""

    title: str = ""
    domain: str | None = None
    domain_label: str | None = None
    department: str | None = None
    url: str | None = None
    window: PublicationWindow = PublicationWindow()
    document_no: str = ""  # 文号 (letters)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ItemSnapshot:
        start, until = (
            date.fromisoformat(v) if (v := data.get(k)) else None for k in ("publish_from", "publish_until")
        )
        return cls(
            title=data.get("title") or "",
            domain=data.get("domain"),
            domain_label=data.get("domain_label"),
            department=data.get("department"),
            url=data.get("url"),
            window=PublicationWindow(start, until),
            document_no=data.get("document_no") or "",
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "domain": self.domain,
            "domain_label": self.domain_label,
            "department": self.department,
            "url": self.url,
            "publish_from": self.window.start.isoformat() if self.window.start else None,
            "publish_until": self.window.until.isoformat() if self.window.until else None,
            "document_no": self.document_no,
        }


def _by_key(
    rule: Rule, part: Callable[[ChangeTemplates], dict[Channel, str]], plain: dict[Channel, str]
) -> dict[str, str]:
    """Templates keyed by channel ("sms"), or by channel and kind of change ("sms:left") for an
    `audience: changes` rule: every template its run may send is frozen and diffed."""
    if not rule.change_templates:
        return {c.value: v for c, v in plain.items()}
    return {f"{c.value}:{kind}": v for kind, t in rule.change_templates.items() for c, v in part(t).items()}


@dataclass(frozen=True)
class RunSnapshot:
    """The rule (normalised document and file), templates, item, disclosure, the parameter
    values in force on the run date and the channel order (first reachable, then fallbacks)."""

    rule: Mapping[str, Any] = field(default_factory=dict)
    file: str | None = None
    templates: Mapping[str, str] = field(default_factory=dict)  # channel -> template source
    template_names: Mapping[str, str] = field(default_factory=dict)  # channel -> template name
    item: ItemSnapshot = ItemSnapshot()
    disclosure: str = "public"
    params: Mapping[str, Any] = field(default_factory=dict)
    channels: tuple[Channel, ...] = ()
    on: date | None = None  # the run date (letters are dated by it); None in older snapshots

    @classmethod
    def of_rule(cls, rule: Rule, on: date, domains: Mapping[str, str]) -> RunSnapshot:
        item = rule.item
        return cls(
            rule=rule.document,
            file=rule.file,
            templates=_by_key(rule, lambda t: t.sources, rule.template_sources),
            template_names=_by_key(rule, lambda t: t.names, rule.templates),
            item=ItemSnapshot(
                item.title,
                item.domain,
                domains.get(item.domain, item.domain),
                item.department,
                item.url,
                PublicationWindow.of(item),
                item.document_no,
            ),
            on=on,
            disclosure=item.disclosure,
            params=params_in_force(rule, on),
            channels=tuple(rule.channels),
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> RunSnapshot:
        data = data or {}
        return cls(
            rule=data.get("rule") or {},
            file=data.get("file"),
            templates=data.get("templates") or {},
            template_names=data.get("template_names") or {},
            item=ItemSnapshot.from_json(data.get("item") or {}),
            disclosure=data.get("disclosure") or "public",
            params=data.get("params") or {},
            channels=tuple(Channel(c) for c in data.get("channels") or ()),
            on=date.fromisoformat(data["on"]) if data.get("on") else None,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": dict(self.rule),
            "file": self.file,
            "templates": dict(self.templates),
            "template_names": dict(self.template_names),
            "item": self.item.to_json(),
            "disclosure": self.disclosure,
            "params": dict(self.params),
            "channels": [c.value for c in self.channels],
            "on": self.on.isoformat() if self.on else None,
        }

    @property
    def restricted(self) -> bool:
        return self.disclosure == "restricted"

    def gate(self, day: date) -> Gate:
        """The claim gate of the run's item on `day` (the local date): restricted items and
        windows that ended close the run; a window that has not opened yet holds it."""
        window = self.item.window
        if self.restricted:
            return Gate(GateState.CLOSED, "item is restricted", "the item is restricted and is never sent")
        if window.after(day):
            return Gate(
                GateState.CLOSED,
                f"publication window ended on {window.until}",
                f"outside the publication window: it ended on {window.until}",
            )
        if window.before(day):
            return Gate(
                GateState.WAITING,
                f"the item is published from {window.start}",
                f"outside the publication window: the item is published from {window.start}",
            )
        return OPEN
