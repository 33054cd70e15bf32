"""`rules preview` and `rules explain`: who a rule reaches and why, before anything is sent."""
from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa

from .app import App
from .audience import evaluate
from .errors import NotFound
from .fields import BUILTIN_FIELDS
from .rendering.context import resident_context
from .rendering.segments import count_segments
from .rendering.templates import TemplateSet, display_value, item_context
from .rules.compile import params_in_force, result_name
from .rules.model import FieldCondition, Rule
from .status import Channel
from .storage.fieldcols import column_name


def _context(app: App, rule: Rule, on: date, params: dict[str, Any], row: Any, masked: bool) -> dict[str, Any]:
    return {"resident": resident_context(app.dictionary, row, masked=masked), "item": item_context(rule.item, app.dictionary.domains),
            "params": {k: display_value(_d(v["value"])) for k, v in params.items()},
            "run": {"id": None, "rule": rule.id, "on_date": on}}


def _d(v: Any) -> Any:
    from decimal import Decimal
    return Decimal(str(v))


def preview(app: App, rule: Rule, on: date, sample: int = 3) -> dict[str, Any]:
    aud = evaluate(app, rule, on)
    templates = TemplateSet(rule.templates, rule.template_sources)
    by_id = {m.resident_id: m for m in aud.members}
    t = app.residents
    sms_ids = [m.resident_id for m in aud.members if m.channel is Channel.SMS]
    segments = 0
    samples: list[dict[str, Any]] = []
    params = params_in_force(rule, on)
    with app.engine.connect() as conn:
        for i in range(0, len(sms_ids), 5000):
            for row in conn.execute(sa.select(t).where(t.c.resident_id.in_(sms_ids[i:i + 5000]))):
                body = templates.render(Channel.SMS, _context(app, rule, on, params, row, False)).body
                segments += count_segments(body).segments
        chosen = [m for m in aud.members if m.channel][:sample]
        rows = {r.resident_id: r for r in conn.execute(sa.select(t).where(t.c.resident_id.in_([m.resident_id for m in chosen])))}
    for m in chosen:
        assert m.channel is not None
        rendered = templates.render(m.channel, _context(app, rule, on, params, rows[m.resident_id], True))
        seg = count_segments(rendered.body) if m.channel is Channel.SMS else None
        samples.append({"resident": _mask_id(m.resident_id), "channel": m.channel.value, "subject": rendered.subject,
                        "body": rendered.body, **({"segments": seg.segments, "encoding": seg.encoding} if seg else {})})
    price = app.config.channels.get(Channel.SMS)
    return {"rule": rule.id, "version": rule.version, "on": on.isoformat(), **aud.counts, "by_channel": aud.by_channel(),
            "sms_segments": segments, "sms_cost": round(segments * (price.price_per_segment if price else 0.0), 2),
            "params": params, "samples": samples,
            "no_contact": sum(1 for m in by_id.values() if m.channel is None)}


def _mask_id(resident_id: str) -> str:
    return resident_id  # resident ids are register keys, not personal data


def explain(app: App, rule: Rule, resident_id: str, on: date) -> dict[str, Any]:
    aud = evaluate(app, rule, on, members=False)
    c = aud.compiled
    q = c.query.subquery("rq")
    t = app.residents
    with app.engine.connect() as conn:
        got = conn.execute(sa.select(q).where(q.c.resident_id == resident_id)).one_or_none()
        person = conn.execute(sa.select(t).where(t.c.resident_id == resident_id)).one_or_none()
    if got is None or person is None:
        raise NotFound(f"no resident {resident_id!r} in the register")
    conditions = []
    for leaf in c.leaves:
        value = getattr(got, f"cond_{leaf.id}")
        entry: dict[str, Any] = {"id": leaf.id, "label": leaf.label,
                                 "result": "unknown" if value is None else "pass" if value else "fail"}
        if isinstance(leaf, FieldCondition):
            spec = app.dictionary.all_fields()[leaf.field]
            raw = getattr(person, column_name(spec))
            entry.update(field=leaf.field, op=leaf.op, value=None if raw is None else str(display_value(raw)),
                         threshold=_show(c.thresholds.get(leaf.id)))
            if spec.name in BUILTIN_FIELDS and spec.name in ("phone", "id_number", "name", "email"):
                entry["value"] = "***"
        else:
            entry.update(records=leaf.kind, within_years=leaf.within_years)
        conditions.append(entry)
    result = result_name(got.result)
    return {"rule": rule.id, "version": rule.version, "resident": resident_id, "on": on.isoformat(), "result": result,
            "conditions": conditions, "params": c.params_used}


def _show(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_show(v) for v in value]
    if value is None or isinstance(value, (bool, int)):
        return value
    return str(display_value(value)) if not isinstance(value, date) else value.isoformat()
