"""Publishing a 公示 list: the run it lists, its validity, the files, the record and the audit event.

A list is built from a rule's latest approved or completed run dated on or before the day it is
published, valid for `days` days from that day (7 by default: 公示期 from–until, both ends
included). The HTML is stored in the database and the PDF under the project folder
(`public-lists/`), so the website serves exactly what was published; the rows' SHA-256 is printed
on the list, and it, the HTML's and the PDF's are in the row and in the audit event
`list.published` (with the rule, run, validity and row count — never a name).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..actors import actor_name
from ..app import App
from ..audit import log as audit
from ..clock import as_utc, utcnow
from ..errors import ConfigError, InputError, NotFound
from ..rules.model import Rule
from ..runs.snapshot import RunSnapshot
from ..status import RunStatus
from ..storage.schema import public_lists, runs
from .render import ListDocument, list_html, list_pdf
from .rows import list_rows, rows_sha256

DEFAULT_DAYS = 7
MAX_DAYS = 366
LISTED = (RunStatus.APPROVED, RunStatus.COMPLETED)
"""Runs a list may be published for: approved (being sent) or completed."""
FOLDER = "public-lists"
QUERY_PATH = "/query"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True)
class PublishedList:
    """A published list as its record holds it (without its page)."""

    id: int
    rule: str
    run: int
    title: str
    valid_from: date
    valid_until: date
    rows: int
    sha256: str
    html_sha256: str
    pdf_sha256: str
    pdf_path: str  # relative to the project folder
    published_at: datetime
    published_by: str

    def state(self, today: date) -> str:
        """current | expired (past its 公示期) | upcoming (not yet in it)."""
        if today > self.valid_until:
            return "expired"
        return "upcoming" if today < self.valid_from else "current"

    def as_json(self) -> dict[str, Any]:
        return {
            "list": self.id,
            "rule": self.rule,
            "run": self.run,
            "title": self.title,
            "valid_from": self.valid_from.isoformat(),
            "valid_until": self.valid_until.isoformat(),
            "rows": self.rows,
            "sha256": self.sha256,
            "html_sha256": self.html_sha256,
            "pdf_sha256": self.pdf_sha256,
            "pdf": self.pdf_path,
            "published_at": as_utc(self.published_at).isoformat(),
            "published_by": self.published_by,
        }


def sha256(data: bytes | str) -> str:
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def query_url(app: App) -> str:
    """The self-query page the list's QR code leads to: `[serve] public_url` + /query."""
    base = app.config.serve.public_url.rstrip("/")
    if not base:
        raise ConfigError(
            "a public list prints a QR code to the self-query page: set [serve] public_url "
            "(e.g. https://notice.example.gov.cn)"
        )
    return base + QUERY_PATH


def listed_run(app: App, rule_id: str, on: date) -> sa.Row[Any]:
    """The rule's latest approved or completed run dated on or before `on`."""
    r = runs
    with app.reader.connect() as conn:
        row = conn.execute(
            sa.select(r)
            .where(r.c.rule_id == rule_id, r.c.status.in_([s.value for s in LISTED]), r.c.on_date <= on)
            .order_by(r.c.on_date.desc(), r.c.id.desc())
            .limit(1)
        ).first()
    if row is None:
        raise NotFound.translatable(
            "rule '%(rule)s' has no approved or completed run dated on or before %(on)s: "
            "nothing to publish (create and approve a run first)",
            rule=rule_id,
            on=on.isoformat(),
        )
    return row


def publish_list(
    app: App,
    rule: Rule,
    on: date,
    by: str,
    *,
    days: int = DEFAULT_DAYS,
    out_dir: Path | None = None,
    now: datetime | None = None,
) -> PublishedList:
    """Build, store and audit the list of `rule`'s run for `on`, valid `days` days from `on`;
    with `out_dir`, the HTML and PDF are also written there (for the notice board's printer)."""
    if not 1 <= days <= MAX_DAYS:
        raise InputError(f"--days must be between 1 and {MAX_DAYS}, not {days}")
    by = actor_name(by)
    url = query_url(app)
    run = listed_run(app, rule.id, on)
    item = RunSnapshot.from_json(run.snapshot).item
    rows = list_rows(app, run.id, rule.public_fields)
    doc = ListDocument(
        title=item.title,
        department=item.department or "",
        document_no=item.document_no,
        valid_from=on,
        valid_until=on + timedelta(days=days - 1),
        contact=app.config.verification.contact_phone,
        query_url=url,
        rows=tuple(rows),
        sha256=rows_sha256(rows),
        run_id=run.id,
    )
    page = list_html(doc)
    pdf = list_pdf(page)
    pdf_sha256 = sha256(pdf)  # in the file's name: a list published again never overwrites one
    stem = f"{_UNSAFE.sub('_', rule.id)}-run{run.id}-{on.isoformat()}-{pdf_sha256[:12]}"
    relative = f"{FOLDER}/{stem}.pdf"
    _write(app.config.base_dir / relative, pdf)
    record = {
        "rule_id": rule.id,
        "run_id": run.id,
        "title": item.title,
        "valid_from": doc.valid_from,
        "valid_until": doc.valid_until,
        "rows": len(rows),
        "sha256": doc.sha256,
        "html": page,
        "html_sha256": sha256(page),
        "pdf_path": relative,
        "pdf_sha256": pdf_sha256,
        "published_at": now or utcnow(),
        "published_by": by,
    }
    with app.engine.begin() as conn:
        insert = public_lists.insert().values(**record).returning(public_lists.c.id)
        list_id = conn.execute(insert).scalar_one()
        audit.record(
            conn,
            by,
            "list.published",
            f"list:{list_id}",
            rule=rule.id,
            run=run.id,
            valid_from=doc.valid_from.isoformat(),
            valid_until=doc.valid_until.isoformat(),
            rows=len(rows),
            sha256=doc.sha256,
            html_sha256=record["html_sha256"],
            pdf_sha256=record["pdf_sha256"],
        )
    if out_dir is not None:
        _write(out_dir / f"{stem}.pdf", pdf)
        _write(out_dir / f"{stem}.html", page.encode("utf-8"))
    return _published(list_id, record)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _published(list_id: int, r: Mapping[Any, Any]) -> PublishedList:
    return PublishedList(
        id=list_id,
        rule=r["rule_id"],
        run=r["run_id"],
        title=r["title"],
        valid_from=r["valid_from"],
        valid_until=r["valid_until"],
        rows=r["rows"],
        sha256=r["sha256"],
        html_sha256=r["html_sha256"],
        pdf_sha256=r["pdf_sha256"],
        pdf_path=r["pdf_path"],
        published_at=r["published_at"],
        published_by=r["published_by"],
    )


_SUMMARY = [c for c in public_lists.c if c.name != "html"]


def published_lists(app: App, rule_id: str | None = None) -> list[PublishedList]:
    """Every published list, newest first (optionally one rule's)."""
    q = sa.select(*_SUMMARY).order_by(public_lists.c.id.desc())
    if rule_id is not None:
        q = q.where(public_lists.c.rule_id == rule_id)
    with app.reader.connect() as conn:
        return [_published(r.id, r._mapping) for r in conn.execute(q)]


def published_list(app: App, list_id: int) -> tuple[PublishedList, str]:
    """One list and its page as published."""
    with app.reader.connect() as conn:
        row = conn.execute(sa.select(public_lists).where(public_lists.c.id == list_id)).first()
    if row is None:
        raise NotFound.translatable("no public list %(list)s", list=list_id)
    return _published(row.id, row._mapping), str(row.html)


def list_pdf_bytes(app: App, item: PublishedList) -> bytes:
    """The list's PDF as published; a file changed since (or gone) is an error, never served."""
    try:
        data = (app.config.base_dir / item.pdf_path).read_bytes()
    except OSError:
        raise NotFound.translatable("the PDF of public list %(list)s is missing", list=item.id) from None
    if sha256(data) != item.pdf_sha256:
        raise NotFound.translatable(
            "the PDF of public list %(list)s no longer matches what was published", list=item.id
        )
    return data
