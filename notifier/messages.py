"""A run's messages: rendered once, when the run is created, from the register as it stands then.

Approvers page through exactly what will be sent (`runs messages`), the dispatcher sends the
stored text, and a fallback delivery takes the message rendered for its channel at the same
moment, so nothing a resident receives comes from data changed after the run was approved
(DESIGN §14, invariant 7). Rendering every channel a member could be reached on up front also
means a template that cannot render for someone stops the run at creation, with the template,
its line and the residents concerned, instead of failing (or falling back) at send time.
"""

from __future__ import annotations

import gc
import os
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import sqlalchemy as sa

from .app import App
from .audience import Member, reach
from .errors import Problem, RenderError, RuleError
from .forked import Child, Send, can_fork
from .masking import mask_address, mask_email, mask_id_number, mask_name, mask_phone, mask_text
from .rendering.context import ResidentContext, amount_value, params_context
from .rendering.segments import count_segments
from .rendering.shapes import ShapedTemplate
from .rendering.smsparams import TemplateParams, as_json
from .rendering.templates import TemplateSet, digest, item_context, template_context
from .rules.compile import params_in_force
from .rules.model import Rule
from .status import Channel
from .storage.records import records
from .verification import DeliveryIdentity, template_values, verifier

CHUNK = 5000  # residents fetched per query
SHOWN = 5  # residents named per template problem


def later_channels(order: Sequence[Channel], channel: Channel) -> list[Channel]:
    """The rule's channels after `channel`: where a fallback may go."""
    return list(order[order.index(channel) + 1 :]) if channel in order else []


@dataclass
class RenderedRun:
    """The stored messages of a run (run_messages rows without run_id) and what failed to render."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    failures: dict[tuple[str | None, int | None, str], list[str]] = field(
        default_factory=lambda: defaultdict(list)
    )

    def extend(self, other: RenderedRun) -> None:
        """Append another part's messages and failures (the parts in the order of their members)."""
        self.rows += other.rows
        for k, who in other.failures.items():
            self.failures[k].extend(who)

    def raise_for_failures(self, rule: Rule) -> None:
        if not self.failures:
            return
        problems = []
        for (name, line, message), who in self.failures.items():
            shown = "、".join(who[:SHOWN]) + (f" and {len(who) - SHOWN} more" if len(who) > SHOWN else "")
            problems.append(
                Problem(f"{message} (residents: {shown})", file=rule.template_file(name), line=line, column=1)
            )
        affected = len({w for who in self.failures.values() for w in who})
        raise RenderError(
            f"rule {rule.id!r}: templates cannot render for {affected} resident(s); no run was created",
            problems,
        )


def render_messages(
    app: App,
    rule: Rule,
    on: date,
    members: list[Member],
    key: str = "",
    amounts: dict[str, int | None] | None = None,
) -> RenderedRun:
    """Render each member's channel and every later channel they have a contact for. A
    template that fails for a member is recorded as a failure (raise_for_failures then refuses
    the whole run), never replaced by a later channel: a render error has no fallback. Each
    message gets the verification code of (notice `key`, resident, channel) when a secret is set.
    `amounts`: each member's notice amount in fen (stored with the message, `{{ amount }}` in yuan).

    From PARALLEL_FROM members on, a forked process renders the second half while this one
    renders the first (two cores); the rows and failures are the same, in the same order."""
    reached = [m for m in members if m.channel is not None]
    half = len(reached) // 2
    with frozen_as_built():
        forked = (
            _forked(app, lambda: _render_part(app, rule, on, reached[half:], key, amounts))
            if _parallel(len(reached))
            else None
        )
        if forked is None:
            return _render_part(app, rule, on, reached, key, amounts)
        try:
            out = _render_part(app, rule, on, reached[:half], key, amounts)
        except BaseException:
            forked.stop()
            raise
        second = _result(forked)
        gc.freeze()
        out.extend(
            second if second is not None else _render_part(app, rule, on, reached[half:], key, amounts)
        )
        return out


_frozen = [0]  # how many frozen_as_built() are open (in any thread)
_frozen_lock = threading.Lock()


@contextmanager
def frozen_as_built() -> Iterator[Callable[[], None]]:
    """The objects alive now, and those frozen while it lasts (gc.freeze: a run's rendered
    messages, chunk by chunk), are left out of the cyclic collector's passes until the outermost
    one ends: every full pass would otherwise walk the audience and all the messages built so
    far again (creating a run of 100,000 members, 209,437 messages: 1.3-1.5 s in the collector
    before, 0.45 s with this, measured by gc.callbacks). Messages hold no cycles, and what is
    freed meanwhile is freed as usual; only cyclic garbage waits for the end."""
    with _frozen_lock:
        _frozen[0] += 1
        gc.freeze()
    try:
        yield gc.freeze  # to freeze what was built since
    finally:
        with _frozen_lock:
            _frozen[0] -= 1
            if not _frozen[0]:
                gc.unfreeze()


FREEZE_EVERY = 8192  # messages
PARALLEL_FROM = 20_000
"""Members from which the rendering is split over two processes (fork, POSIX): below, the fork
and the transfer of the rows cost more than they save."""


def _parallel(n: int) -> bool:
    # Not in a process with threads (the web console, a test server): a fork copies their locks.
    return n >= PARALLEL_FROM and (os.cpu_count() or 1) > 1 and can_fork()


def _forked(app: App, render: Callable[[], RenderedRun]) -> Child | None:
    """A child running `render` with fresh pools for `app`'s engines, its part sent back."""

    def work(send: Send) -> None:
        # The pooled connections are the parent's: new pools for this process, and the old ones
        # kept referenced, so that no connection of the parent's is closed from here (closing a
        # PostgreSQL connection tells the server to end the parent's session).
        _parents = [app.engine.pool, app.reader.pool]  # noqa: F841
        for engine in (app.engine, app.reader):
            engine.dispose(close=False)
        part = render()
        send((part.rows, dict(part.failures)))

    return Child.start(work)


def _result(child: Child) -> RenderedRun | None:
    """The child's part; None when it did not finish (the caller renders that part)."""
    try:
        got = next(iter(child.messages()), None)
    finally:
        code = child.stop(kill=False)
    if code != 0 or got is None:
        return None
    rows, failures = got
    out = RenderedRun(rows)
    for k, who in failures.items():
        out.failures[k].extend(who)
    return out


def _render_part(
    app: App,
    rule: Rule,
    on: date,
    members: list[Member],
    key: str,
    amounts: dict[str, int | None] | None,
) -> RenderedRun:
    """render_messages of these members (all with a channel) in this process."""
    codes = verifier(app.config)
    templates = TemplateSet(rule.templates, rule.template_sources)
    registered = TemplateParams(rule.file, rule.sms_templates)
    item = item_context(rule.item, app.dictionary.domains)
    params = params_context(params_in_force(rule, on))
    resident = ResidentContext(app.dictionary)
    readers, shaped = _shaped(templates, rule, resident)
    postcodes = "f_postcode" in app.residents.c
    uncoded = template_values(app.config, None, None)  # the same for every message without a secret
    later = {ch: [(c, c.value) for c in later_channels(rule.channels, ch)] for ch in Channel}
    amounts = amounts or {}
    out = RenderedRun()
    rows, failures = out.rows, out.failures
    freeze_at = FREEZE_EVERY
    for row, member in member_rows(app, members):
        if len(rows) >= freeze_at:
            gc.freeze()  # the messages so far: see frozen_as_built
            freeze_at += FREEZE_EVERY
        first = member.channel
        if first is None:  # filtered out above; says so to the type checker
            continue
        rid = row.resident_id
        fen = amounts.get(rid)
        amount = amount_value(rule, fen)
        fields = [read(row) for read in readers]  # the resident fields the shaped templates use
        whole: list[dict[str, Any]] = []  # the member's context, built only if a template needs it

        def context(
            row: Any = row, amount: Any = amount, whole: list[dict[str, Any]] = whole
        ) -> dict[str, Any]:
            if not whole:
                whole.append(template_context(resident(row), item, params, None, rule.id, on))
                whole[0]["amount"] = amount
            return whole[0]

        targets = [(first, first.value, member.recipient)]
        for ch, value in later[first]:
            recipient = reach(ch, row.phone, row.phone_kind, row.email, row.address)
            if recipient is not None:
                targets.append((ch, value, recipient))
        for channel, value, recipient in targets:
            calls = {}
            code = codes.code(DeliveryIdentity(key, rid, value)) if codes else None
            verify = uncoded if code is None else template_values(app.config, codes, code)
            try:
                plan = shaped.get(channel)
                if plan is not None:
                    rendered = plan.template.render(
                        [
                            fields[f] if isinstance(f, int) else amount if f == "amount" else verify[f]
                            for f in plan.inputs
                        ],
                        lambda: context() | verify,  # noqa: B023 (called right here)
                    )
                else:
                    shown = context() | verify
                    rendered = templates.render(channel, shown)
                    if channel is Channel.SMS and rule.sms_templates:
                        calls = registered.render(shown)
                        wrong = registered.differences(calls, rendered.body, detail=False)
                        if wrong:
                            raise RuleError("registered SMS template differs", wrong)
            except RuleError as exc:
                for p in exc.problems:
                    failures[(p.file, p.line, p.message)].append(f"{rid} {mask_name(row.name)}".strip())
                continue
            body = rendered.body
            rows.append(
                {
                    "resident_id": rid,
                    "channel": value,
                    "recipient": recipient,
                    "recipient_name": row.name,
                    "township": row.township,
                    "village": row.village,
                    "subject": rendered.subject,
                    "body": body,
                    "html": rendered.html,
                    "segments": count_segments(body).segments if channel is Channel.SMS else None,
                    "sha256": digest(rendered.subject, body, rendered.html),
                    "templates": as_json(calls),
                    "verify_code": code,
                    "postcode": _postcode(row) if channel is Channel.LETTER and postcodes else None,
                    "amount": fen,
                }
            )
    return out


@dataclass(frozen=True)
class _Plan:
    """A channel rendered by shape, and where its per-member inputs come from."""

    template: ShapedTemplate
    inputs: tuple[int | str, ...]  # an index into the member's resident fields, or a context name


def _shaped(
    templates: TemplateSet, rule: Rule, resident: ResidentContext
) -> tuple[list[Callable[[Any], Any]], dict[Channel, _Plan]]:
    """The channels whose messages can be rendered by shape (rendering/shapes.py), and the
    readers of the resident fields they use, each read once per member. Not SMS with registered
    templates: their parameters are rendered from each member's whole context."""
    plans = {}
    names: list[str] = []
    for channel in templates.names:
        if channel is Channel.SMS and rule.sms_templates:
            continue
        shaped = ShapedTemplate.of(templates, channel, resident.names)
        if shaped is not None:
            for i in shaped.inputs:
                if len(i) == 2 and i[1] not in names:
                    names.append(i[1])
            inputs = tuple(names.index(i[1]) if len(i) == 2 else i[0] for i in shaped.inputs)
            plans[channel] = _Plan(shaped, inputs)
    return [resident.field(name) for name in names], plans


def _postcode(row: Any) -> str | None:
    """The register's `postcode` field, where fields.yaml declares one (letters print it)."""
    value = getattr(row, "f_postcode", None)
    return str(value).strip()[:16] or None if value is not None else None


def member_rows(app: App, members: list[Member]) -> Iterator[tuple[Any, Member]]:
    """Each member's register row (members no longer in the register are left out), read in
    chunks from one snapshot."""
    t = app.residents
    with app.reader.connect() as conn:
        for i in range(0, len(members), CHUNK):
            part = members[i : i + CHUNK]
            found = conn.execute(sa.select(t).where(t.c.resident_id.in_([m.resident_id for m in part])))
            rows = {r.resident_id: r for r in records(found)}  # read ~25 times a member: records.py
            for m in part:
                if m.resident_id in rows:
                    yield rows[m.resident_id], m


def mask_message(text: str | None, personal: Sequence[str | None]) -> str | None:
    """A stored message with the resident's own name, phone, ID number, e-mail and address
    masked where they occur, then any other number or address that looks personal."""
    if text is None:
        return None
    for value, masked in sorted(_masked_forms(personal), key=lambda p: -len(p[0])):
        text = text.replace(value, masked)
    return mask_text(text)


def _masked_forms(personal: Sequence[str | None]) -> Iterator[tuple[str, str]]:
    name, phone, id_number, email, address = personal
    if phone:
        yield phone, mask_phone(phone)
        if phone.startswith("+86"):
            yield phone[3:], mask_phone(phone[3:])
    for value, mask in (
        (id_number, mask_id_number),
        (email, mask_email),
        (address, mask_address),
        (name, mask_name),
    ):
        if value:
            yield value, mask(value)
