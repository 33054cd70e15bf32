"""`residents import` and `records import`: spreadsheet rows -> validated, typed rows -> bulk upsert.

A bad row is rejected with its row number, column and reason and never blocks the good
ones; an unusable phone or e-mail is only dropped from its row with a warning. Writes are
Core executemany batches; one audit event records each import.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..app import App
from ..audit import log as audit
from ..clock import utcnow
from ..errors import InputError, Problem
from ..fields import BUILTIN_FIELDS, FieldSpec, header_map, norm_header
from ..masking import mask_id_number, mask_text
from ..storage.bulk import executemany, insert_new
from ..storage.fieldcols import column_name
from ..storage.schema import records
from .readers import read_table
from .validate import check_id_number, normalize_email, normalize_phone

BATCH = 2000
Progress = Callable[[int], None]


@dataclass
class ImportReport:
    file: str
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    dry_run: bool = False

    @property
    def exit_code(self) -> int:
        return 3 if self.rejected else 0

    def as_json(self) -> dict[str, Any]:
        return {"file": self.file, "dry_run": self.dry_run, "imported": self.imported, "updated": self.updated,
                "unchanged": self.unchanged, "rejected": self.rejected,
                "errors": [_cell(p) for p in self.errors], "warnings": [_cell(p) for p in self.warnings]}


def _cell(p: Problem) -> dict[str, Any]:
    return {"row": p.row, "column": p.column, "message": p.message}


@dataclass
class ParsedRow:
    row: int
    values: dict[str, Any]            # field name -> typed value (None when empty)
    errors: list[Problem]
    warnings: list[Problem]


def _map_columns(header: list[str], specs: dict[str, FieldSpec], file: str,
                 report: ImportReport) -> list[tuple[int, FieldSpec]]:
    lookup = header_map(specs)
    mapping: list[tuple[int, FieldSpec]] = []
    seen: dict[str, str] = {}
    for idx, title in enumerate(header):
        if not title:
            continue
        spec = lookup.get(norm_header(title))
        if spec is None:
            report.warnings.append(Problem("column is not in the data dictionary and was ignored", row=1, column=title))
            continue
        if spec.name in seen:
            raise InputError(f"{file}: columns {seen[spec.name]!r} and {title!r} both hold {spec.label} ({spec.name})")
        seen[spec.name] = title
        mapping.append((idx, spec))
    if "resident_id" not in seen:
        raise InputError(f"{file}: no resident id column (a header such as 居民编号 or resident_id is required)")
    return mapping


def _parse(table_rows: Iterator[tuple[int, list[Any]]], header: list[str],
           mapping: list[tuple[int, FieldSpec]]) -> Iterator[ParsedRow]:
    contact = {"phone", "email"}
    special = {"phone": normalize_phone, "email": normalize_email, "id_number": check_id_number,
               "resident_id": lambda raw: str(raw).strip()}
    columns = [(idx, spec.name, header[idx], special.get(spec.name) or spec.converter()) for idx, spec in mapping]
    rid_col = next(title for _, name, title, _ in columns if name == "resident_id")
    for rownum, cells in table_rows:
        values: dict[str, Any] = {}
        errors: list[Problem] = []
        warnings: list[Problem] = []
        width = len(cells)
        for idx, name, title, convert in columns:
            raw = cells[idx] if idx < width else None
            if isinstance(raw, str):
                raw = raw.strip() or None
            if raw is None:
                values[name] = None
                continue
            try:
                values[name] = convert(raw)
            except ValueError as exc:
                if name in contact:
                    values[name] = None
                    warnings.append(Problem(f"{mask_text(str(raw))}: {exc}; dropped, row imported", row=rownum, column=title))
                elif name == "id_number":
                    errors.append(Problem(f"{mask_id_number(str(raw))}: {exc}", row=rownum, column=title))
                else:
                    errors.append(Problem(mask_text(str(exc)), row=rownum, column=title))
        phone = values.get("phone")
        if phone is not None:
            values["phone"], values["phone_kind"] = phone
        elif "phone" in values:
            values["phone_kind"] = None
        if not values.get("resident_id"):
            errors.insert(0, Problem("resident id is missing", row=rownum, column=rid_col))
        yield ParsedRow(rownum, values, errors, warnings)


def _batches(rows: Iterator[ParsedRow], report: ImportReport, progress: Progress | None) -> Iterator[list[ParsedRow]]:
    """Valid rows in batches; rejected rows and warnings go to the report. Duplicated ids are rejected."""
    first_row: dict[str, int] = {}
    batch: list[ParsedRow] = []
    for r in rows:
        report.warnings.extend(r.warnings)
        rid = r.values.get("resident_id")
        key = r.values.get("_key", rid)
        if not r.errors and key in first_row:
            r.errors.append(Problem(f"duplicate of row {first_row[key]}", row=r.row, column="resident_id"))
        if r.errors:
            report.rejected += 1
            report.errors.extend(r.errors)
        else:
            first_row[key] = r.row
            batch.append(r)
        if progress:
            progress(1)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def import_residents(app: App, path: Path, *, actor: str = "import", dry_run: bool = False,
                     progress: Progress | None = None, on_total: Callable[[int | None], None] | None = None) -> ImportReport:
    report = ImportReport(str(path), dry_run=dry_run)
    table = read_table(path)
    if on_total:
        on_total(table.total)
    mapping = _map_columns(table.header, app.dictionary.all_fields(), str(path), report)
    t = app.residents
    present = {spec.name for _, spec in mapping}
    if "phone" in present:
        present.add("phone_kind")
    cols = {name: "phone_kind" if name == "phone_kind" else column_name(app.dictionary.all_fields()[name])
            for name in present}
    now = utcnow()
    upd = (t.update().where(t.c.resident_id == sa.bindparam("b_id"))
           .values({cols[n]: sa.bindparam(f"b_{cols[n]}") for n in present if n != "resident_id"} | {"updated_at": now}))
    with app.engine.begin() as conn:
        for batch in _batches(_parse(table.rows, table.header, mapping), report, progress):
            ids = [r.values["resident_id"] for r in batch]
            existing = set(conn.execute(sa.select(t.c.resident_id).where(t.c.resident_id.in_(ids))).scalars())
            new = [r for r in batch if r.values["resident_id"] not in existing]
            old = [r for r in batch if r.values["resident_id"] in existing]
            report.imported += len(new)
            report.updated += len(old)
            if dry_run:
                continue
            if new:
                executemany(conn, t.insert(), [{cols[n]: r.values.get(n) for n in present} | {"created_at": now, "updated_at": now}
                                               for r in new])
            if old and len(present) > 1:
                executemany(conn, upd, [{"b_id": r.values["resident_id"]} | {f"b_{cols[n]}": r.values.get(n) for n in present
                                                                            if n != "resident_id"} for r in old])
        if not dry_run:
            audit.record(conn, actor, "residents.import", path.name, file_sha256=_sha256(path),
                         imported=report.imported, updated=report.updated, rejected=report.rejected,
                         rejected_rows=sorted({p.row for p in report.errors if p.row}))
    return report


def import_records(app: App, kind: str, path: Path, *, actor: str = "import", dry_run: bool = False,
                   progress: Progress | None = None, on_total: Callable[[int | None], None] | None = None) -> ImportReport:
    spec_kind = app.dictionary.records.get(kind)
    if spec_kind is None:
        from ..errors import did_you_mean
        raise InputError(f"unknown record kind {kind!r}{did_you_mean(kind, app.dictionary.records)}; "
                         f"declared in {app.dictionary.source}: {', '.join(app.dictionary.records) or 'none'}")
    report = ImportReport(str(path), dry_run=dry_run)
    table = read_table(path)
    if on_total:
        on_total(table.total)
    specs = {"resident_id": BUILTIN_FIELDS["resident_id"], **spec_kind.fields}
    mapping = _map_columns(table.header, specs, str(path), report)
    rt = app.residents
    now = utcnow()
    # RETURNING lists only the rows really inserted (executemany rowcounts differ between drivers).
    ins = insert_new(app.engine, records, "kind", "fingerprint").returning(records.c.id)

    def keyed(rows: Iterator[ParsedRow]) -> Iterator[ParsedRow]:
        for r in rows:
            data = {k: v for k, v in r.values.items() if k != "resident_id"}
            r.values["_data"] = data
            r.values["_key"] = hashlib.sha256(audit.canonical_json([kind, r.values.get("resident_id"), data]).encode()).hexdigest()
            yield r

    with app.engine.begin() as conn:
        for batch in _batches(keyed(_parse(table.rows, table.header, mapping)), report, progress):
            ids = {r.values["resident_id"] for r in batch}
            known = set(conn.execute(sa.select(rt.c.resident_id).where(rt.c.resident_id.in_(ids))).scalars())
            good = []
            for r in batch:
                if r.values["resident_id"] in known:
                    good.append(r)
                else:
                    report.rejected += 1
                    report.errors.append(Problem("no resident with this id has been imported", row=r.row, column="resident_id"))
            if dry_run or not good:
                report.imported += len(good)
                continue
            result = conn.execute(ins, [{
                "kind": kind, "resident_id": r.values["resident_id"],
                "record_date": r.values["_data"].get(spec_kind.date_field) if spec_kind.date_field else None,
                "data": _jsonable(r.values["_data"]),
                "fingerprint": r.values["_key"], "imported_at": now} for r in good])
            inserted = len(result.all())
            report.imported += inserted
            report.unchanged += len(good) - inserted
        if not dry_run:
            audit.record(conn, actor, "records.import", f"{kind}:{path.name}", file_sha256=_sha256(path),
                         imported=report.imported, unchanged=report.unchanged, rejected=report.rejected,
                         rejected_rows=sorted({p.row for p in report.errors if p.row}))
    return report


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    from datetime import date
    from decimal import Decimal
    return {k: (v.isoformat() if isinstance(v, date) else str(v) if isinstance(v, Decimal) else v) for k, v in data.items()}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
