"""A created run stores what rendering each member on its own would store (issue 15 item 8).

Run creation renders by shape (rendering/shapes.py), splits the rendering over two processes from
messages.PARALLEL_FROM members on, and takes the messages' ids up front so that each delivery is
stored pointing at its message. The reference here does none of that: each message is rendered
per member with the plain template set, its SHA-256 recomputed with json.dumps, its recipient
chosen with audience.choose_channel, and its id is the one the database would have given it
(the rows inserted in order: the previous largest id + 1, + 2, ...)."""

from __future__ import annotations

import csv
import hashlib
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from notifier import messages
from notifier.app import App
from notifier.audience import choose_channel
from notifier.errors import RenderError
from notifier.messages import later_channels
from notifier.rendering.context import ResidentContext, amount_value, params_context
from notifier.rendering.segments import count_segments
from notifier.rendering.templates import TemplateSet, item_context, template_context
from notifier.residents.importer import import_residents
from notifier.rules.compile import params_in_force
from notifier.rules.load import find_rule
from notifier.rules.model import Rule
from notifier.runs import create_run
from notifier.runs.create import notice_key
from notifier.status import Channel
from notifier.storage.schema import deliveries, run_messages
from notifier.verification import template_values
from tests.support.campaign import sample_register
from tests.support.project import write_config

ON = date(2026, 4, 1)
EVERYONE = """\
id: {id}
item: {{title: 2026年农村危房改造补助, domain: rural_housing_repair, department: 县住房和城乡建设局,
       url: https://example.gov.cn/zwgk/2026/wf014, publish: {{from: 2026-01-01, until: 2030-12-31}},
       disclosure: public}}
parameters:
  low_income_line: {{unit: 元, reference: test, values: {{2026-01-01: 7440}}}}
match:
  any:
    - {{field: registration, in: [rural, urban]}}
    - {{field: registration, is_missing: true}}
channels: [{channels}]
templates: {{sms: {sms}, email: housing_repair.email.j2, letter: housing_repair.letter.j2}}
"""
STRICT_SMS = "【{{ item.department }}】{{ resident.name }}您好：请到{{ resident.township }}人民政府申请。"


def _project(folder: Path, db_url: str, n: int) -> App:
    """A county of n generated residents: some without a township or village (missing values
    in the templates), some sharing a phone (the same text to the same recipient is skipped)."""
    cfg = write_config(folder, db_url)
    (folder / "templates" / "strict.sms.j2").write_text(STRICT_SMS, encoding="utf-8")
    for rule_id, channels, sms in (
        ("everyone-a", "sms, email, letter", "housing_repair.sms.j2"),
        ("everyone-b", "letter, sms, email", "housing_repair.sms.j2"),
        ("strict", "sms, letter", "strict.sms.j2"),
    ):
        text = EVERYONE.format(id=rule_id, channels=channels, sms=sms)
        (folder / "rules" / f"{rule_id}.yaml").write_text(text, encoding="utf-8")
    residents, _ = sample_register(folder, n)
    with residents.open(encoding="utf-8", newline="") as f:
        table = list(csv.reader(f))
    header, body = table[0], table[1:]
    at = {h: header.index(h) for h in ("姓名", "乡镇", "村", "手机号码", "电子邮箱", "家庭住址")}
    for i, row in enumerate(body):
        if i % 9 == 4:
            row[at["乡镇"]] = ""
        if i % 13 == 6:
            row[at["村"]] = ""
        if i % 17 == 8:  # the same name, township and phone as the resident before: the same SMS
            for h in ("姓名", "乡镇", "手机号码"):
                row[at[h]] = body[i - 1][at[h]]
        if i % 23 == 10:  # no contact at all
            for h in ("手机号码", "电子邮箱", "家庭住址"):
                row[at[h]] = ""
    with residents.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([header, *body])
    app = App.open(cfg)
    import_residents(app, residents)
    return app


def _rule(app: App, rule_id: str) -> Rule:
    return find_rule(rule_id, app.config.rules_dir, app.dictionary, app.config.templates_dir)


def _expected(app: App, rule: Rule, run_id: int, first_id: int) -> tuple[list[dict[str, Any]], list[Any]]:
    """The run's messages (in id order) and each delivery's message id, from the reference."""
    templates = TemplateSet(rule.templates, rule.template_sources)
    item = item_context(rule.item, app.dictionary.domains)
    params = params_context(params_in_force(rule, ON))
    resident = ResidentContext(app.dictionary)
    with app.engine.connect() as conn:
        register = {r.resident_id: r for r in conn.execute(sa.select(app.residents))}
        stored = conn.execute(
            sa.select(deliveries).where(deliveries.c.run_id == run_id).order_by(deliveries.c.id)
        ).all()
    out: list[dict[str, Any]] = []
    links: list[Any] = []
    for d in stored:
        if d.channel == "none":
            links.append(None)
            continue
        row = register[d.resident_id]
        first = Channel(d.channel)
        targets = [(first, d.recipient)]
        for ch in later_channels(rule.channels, first):
            got, recipient, _ = choose_channel(
                [ch], None, row.phone, row.phone_kind, row.email, row.address, False
            )
            if got is not None:
                targets.append((ch, recipient))
        links.append(first_id + len(out))
        for ch, recipient in targets:
            context = template_context(resident(row), item, params, None, rule.id, ON)
            context |= {"amount": amount_value(rule, None), **template_values(app.config, None, None)}
            m = templates.render(ch, context)
            array = json.dumps([m.subject, m.body, m.html], ensure_ascii=False, separators=(",", ":"))
            out.append(
                {
                    "id": first_id + len(out),
                    "run_id": run_id,
                    "resident_id": d.resident_id,
                    "channel": ch.value,
                    "recipient": recipient,
                    "recipient_name": row.name,
                    "township": row.township,
                    "village": row.village,
                    "subject": m.subject,
                    "body": m.body,
                    "html": m.html,
                    "segments": count_segments(m.body).segments if ch is Channel.SMS else None,
                    "sha256": hashlib.sha256(array.encode("utf-8")).hexdigest(),
                    "verify_code": None,
                    "amount": None,
                }
            )
    return out, links


def _stored(app: App, run_id: int) -> tuple[list[dict[str, Any]], list[Any]]:
    columns = [run_messages.c[k] for k in ("id", "run_id", "resident_id", "channel", "recipient")] + [
        run_messages.c[k]
        for k in ("recipient_name", "township", "village", "subject", "body", "html", "segments")
    ]
    columns += [run_messages.c.sha256, run_messages.c.verify_code, run_messages.c.amount]
    with app.engine.connect() as conn:
        rows = conn.execute(
            sa.select(*columns).where(run_messages.c.run_id == run_id).order_by(run_messages.c.id)
        )
        stored = [dict(r._mapping) for r in rows]
        links = conn.execute(
            sa.select(deliveries.c.message_id).where(deliveries.c.run_id == run_id).order_by(deliveries.c.id)
        ).scalars()
        return stored, list(links)


def _skips(app: App, run_id: int, stored: list[dict[str, Any]]) -> dict[int, tuple[str, Any, Any]]:
    """Each delivery's status, notice key and reason as stored."""
    d = deliveries
    with app.engine.connect() as conn:
        rows = conn.execute(
            sa.select(d.c.id, d.c.status, d.c.notice_key, d.c.reason).where(d.c.run_id == run_id)
        )
        return {r.id: (r.status, r.notice_key, r.reason) for r in rows}


def _expected_skips(
    app: App, run_id: int, stored: list[dict[str, Any]], key: str
) -> dict[int, tuple[str, Any, Any]]:
    """Skipped: no contact, or someone with a smaller resident id (as text) already gets the same
    text at the same recipient (by brute force over the stored messages); pending otherwise."""
    d = deliveries
    with app.engine.connect() as conn:
        rows = conn.execute(sa.select(d).where(d.c.run_id == run_id)).all()
    out: dict[int, tuple[str, Any, Any]] = {}
    for r in rows:
        if r.channel == "none":
            out[r.id] = ("skipped", None, r.reason if r.reason.startswith("no usable contact: ") else "?")
            continue
        mine = next(m for m in stored if (m["resident_id"], m["channel"]) == (r.resident_id, r.channel))
        same = sorted(
            m["resident_id"]
            for m in stored
            if (m["channel"], m["recipient"], m["sha256"]) == (r.channel, mine["recipient"], mine["sha256"])
        )
        if same[0] != r.resident_id:
            out[r.id] = ("skipped", None, f"same notice to the same recipient as resident {same[0]}")
        else:
            out[r.id] = ("pending", key, None)
    return out


@pytest.mark.parametrize("parallel", [False, True])
def test_a_run_stores_what_rendering_each_member_alone_stores(
    tmp_path: Path, db_url: str, parallel: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _project(tmp_path, db_url, 400)
    monkeypatch.setattr(messages, "PARALLEL_FROM", 2 if parallel else 10**9)
    try:
        previous = 0
        for rule_id in ("everyone-a", "everyone-b"):  # the second run's ids follow the first's
            rule = _rule(app, rule_id)
            created = create_run(app, rule, ON, "clerk")
            stored, links = _stored(app, created.run)
            expected, expected_links = _expected(app, rule, created.run, previous + 1)
            assert len(stored) == len(expected) > created.audience * 1.5
            for got, want in zip(stored, expected, strict=True):
                assert got == want
            assert links == expected_links
            assert _skips(app, created.run, stored) == _expected_skips(
                app, created.run, stored, notice_key(rule, ON)
            )
            said = " ".join(str(reason) for _, _, reason in _skips(app, created.run, stored).values())
            assert "no usable contact" in said and "same notice to the same recipient" in said
            previous = stored[-1]["id"]
        # the fork was taken (a process with threads renders alone): this test covers it
        assert messages._parallel(created.audience) is parallel
    finally:
        app.close()


def test_render_failures_are_the_same_in_two_processes(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The residents a template cannot render for, in the same order, whichever process rendered them."""
    app = _project(tmp_path, sqlite_url, 300)
    try:
        said = []
        for threshold in (10**9, 2):
            monkeypatch.setattr(messages, "PARALLEL_FROM", threshold)
            with pytest.raises(RenderError) as caught:
                create_run(app, _rule(app, "strict"), ON, "clerk")
            said.append((str(caught.value), [(p.file, p.line, p.message) for p in caught.value.problems]))
        assert said[0] == said[1]
        assert "resident.township has no value" in said[0][1][0][2]
        with app.engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(run_messages)).scalar() == 0
    finally:
        app.close()
