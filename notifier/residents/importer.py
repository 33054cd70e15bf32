"""`residents import` and `records import`: spreadsheet rows -> validated, typed rows -> bulk upsert.

A bad row is rejected with its row number, column and reason and never blocks the good
ones; an unusable phone or e-mail is only dropped from its row with a warning. One person is
one resident: an ID number already held by another resident id (earlier in the file or in the
register) rejects the row. Writes are Core executemany batches inside one transaction, so a
failure part-way leaves the register as it was; a row equal to what is stored is counted
`unchanged` and not written. One audit event records each import. A fill-in sheet of the review
queue (residents/fillin.py) only completes residents: see docs/review-queue.md. Rows are parsed
in chunks, column by column (residents/parse.py), in worker processes for a large file on a machine
with cores to spare (residents/pool.py), merged back in file order before any of the checks above;
a chunk's new residents are inserted as tuples built from its columns (residents/insert.py). See
docs/import.md.
"""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..app import App
from ..audit import log as audit
from ..clock import utcnow
from ..errors import InputError, NotifierError, Problem
from ..fields import BUILTIN_FIELDS, FieldSpec, FieldType
from ..masking import mask_id_number
from ..storage.bulk import executemany, insert_new
from ..storage.db import db_error_text
from ..storage.fieldcols import column_name
from ..storage.schema import records
from .fillin import IDENTITY_HEADERS, is_fill_in
from .header import HeaderMatcher
from .insert import ColumnInsert, KeysIn
from .leaving import ACTIVE, LeftAs, mark_left
from .parse import Chunk, ParsedRow, rows_of
from .pool import DEFAULT, Pooling, parsed_table
from .readers import Table, read_table, read_whole

BATCH = 2000
BIRTH_FIELD = (
    "birth_date"  # a declared date field of this name is checked against, and filled from, the ID number
)
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
    encoding: str | None = None  # CSV: utf-8, utf-8-sig or gb18030; XLSX: None
    header_row: int = 1
    sheet: str | None = None
    columns: list[tuple[str, str]] = field(default_factory=list)  # (header in the file, field name) used
    left: int = 0  # residents the 状态 column marks (or would mark) as left: deceased, moved away
    fill_in: bool = False  # a fill-in sheet (residents/fillin.py): filled cells completed, nothing replaced

    @property
    def exit_code(self) -> int:
        return 3 if self.rejected else 0

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "dry_run": self.dry_run,
            "imported": self.imported,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "left": self.left,
            "fill_in": self.fill_in,
            "encoding": self.encoding,
            "header_row": self.header_row,
            "sheet": self.sheet,
            "columns": [{"header": h, "field": f} for h, f in self.columns],
            "errors": [_cell(p) for p in self.errors],
            "warnings": [_cell(p) for p in self.warnings],
        }


def _cell(p: Problem) -> dict[str, Any]:
    return {"row": p.row, "column": p.column, "message": p.message}


def _open(
    path: Path, matcher: HeaderMatcher, report: ImportReport, sheet: str | None, pooling: Pooling
) -> Table:
    table = read_table(path, matcher, sheet)
    report.encoding, report.header_row, report.sheet = table.encoding, table.header_row, table.sheet
    if not pooling.wanted_text(table.total):
        read_whole(table)  # parsed in process: read before the import freezes what it holds
    return table


def _map_columns(
    header: list[str], matcher: HeaderMatcher, file: str, report: ImportReport
) -> list[tuple[int, FieldSpec]]:
    mapping: list[tuple[int, FieldSpec]] = []
    seen: dict[str, str] = {}
    for idx, title in enumerate(header):
        if not title:
            continue
        spec = matcher.field(title)
        if spec is None:
            report.warnings.append(
                Problem(
                    "column is not in the data dictionary and was ignored",
                    row=report.header_row,
                    column=title,
                )
            )
            continue
        if spec.name in seen:
            raise InputError(
                f"{file}: columns {seen[spec.name]!r} and {title!r} both hold {spec.label} ({spec.name})"
            )
        seen[spec.name] = title
        mapping.append((idx, spec))
        report.columns.append((title, spec.name))
    if "resident_id" not in seen:
        raise InputError(
            f"{file}: no resident id column (a header such as 居民编号 or resident_id is required "
            f"in one of the first rows; looked at rows 1-10)"
        )
    return mapping


def _birth_field(specs: dict[str, FieldSpec]) -> FieldSpec | None:
    spec = specs.get(BIRTH_FIELD)
    return spec if spec is not None and spec.type is FieldType.DATE else None


def _batches(
    rows: Iterator[ParsedRow], report: ImportReport, progress: Progress | None
) -> Iterator[list[ParsedRow]]:
    """Valid rows in batches; rejected rows and warnings go to the report. Duplicated ids are rejected."""
    first_row: dict[str, int] = {}
    batch: list[ParsedRow] = []
    for r in rows:
        report.warnings.extend(r.warnings)
        rid = r.values.get("resident_id")
        key = str(r.values.get("_key", rid))
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


def _valid(chunk: Chunk, report: ImportReport, first_row: dict[str, int]) -> list[int]:
    """Indices of the chunk's valid rows; a row with errors or whose resident id an earlier row
    holds (`first_row`: resident id -> row) is rejected, its errors go to the report."""
    rids, rows, errors = chunk.values["resident_id"], chunk.rows, chunk.errors
    if not errors and len(set(rids)) == len(rids) and first_row.keys().isdisjoint(rids):
        first_row.update(zip(rids, rows, strict=True))
        return list(range(len(rids)))
    keep = []
    for i, rid in enumerate(rids):
        problems = errors.get(i)
        if not problems and rid in first_row:
            problems = errors[i] = [
                Problem(f"duplicate of row {first_row[rid]}", row=rows[i], column="resident_id")
            ]
        if problems:
            report.rejected += 1
            report.errors.extend(problems)
        else:
            first_row[rid] = rows[i]
            keep.append(i)
    return keep


def _get(values: dict[str, list[Any]], name: str, i: int) -> Any:
    col = values.get(name)
    return None if col is None else col[i]


def import_residents(
    app: App,
    path: Path,
    *,
    actor: str = "import",
    dry_run: bool = False,
    sheet: str | None = None,
    progress: Progress | None = None,
    on_total: Callable[[int | None], None] | None = None,
    pooling: Pooling = DEFAULT,
) -> ImportReport:
    report = ImportReport(str(path), dry_run=dry_run)
    specs = app.dictionary.all_fields()
    matcher = HeaderMatcher(specs)
    table = _open(path, matcher, report, sheet, pooling)
    if on_total:
        on_total(table.total)
    mapping = _map_columns(table.header, matcher, str(path), report)
    report.fill_in = fill_in = is_fill_in(table.header)
    id_title = next(table.header[i] for i, spec in mapping if spec.name == "resident_id")
    if fill_in:  # its identity columns are there to be read by the cadre, not imported
        report.warnings = [w for w in report.warnings if w.column not in IDENTITY_HEADERS]
    t = app.residents
    present = {spec.name for _, spec in mapping}
    birth = _birth_field(specs) if "id_number" in present else None
    derived_only: set[str] = set()  # filled from the ID number only: an empty value keeps what is stored
    if birth is not None and birth.name not in present:
        present.add(birth.name)
        derived_only.add(birth.name)
    if "phone" in present:
        present.add("phone_kind")
    status = "left_as" in present  # not a stored value: it marks residents as left (leaving.py)
    present.discard("left_as")
    cols = {name: "phone_kind" if name == "phone_kind" else column_name(specs[name]) for name in present}
    compared = [n for n in present if n != "resident_id"]
    if fill_in:  # an empty cell of a fill-in sheet keeps what is stored
        derived_only = set(compared)
    now = utcnow()
    upd = (
        t.update()
        .where(t.c.resident_id == sa.bindparam("b_id"))
        .values(
            {
                cols[n]: (
                    sa.func.coalesce(sa.bindparam(f"b_{cols[n]}", type_=t.c[cols[n]].type), t.c[cols[n]])
                    if n in derived_only
                    else sa.bindparam(f"b_{cols[n]}")
                )
                for n in compared
            }
            | {"updated_at": now}
        )
    )
    stored_cols = [t.c.resident_id, *(t.c[cols[n]] for n in compared)]
    inserted = [(cols[n], n) for n in present]
    stamps = {"created_at": now, "updated_at": now}

    def write(conn: sa.Connection) -> None:
        first_row: dict[str, int] = {}
        id_numbers: dict[str, tuple[int, str]] = {}
        insert = ColumnInsert(conn, t, [c for c, _ in inserted] + list(stamps))
        keys = KeysIn(conn)
        stored_q = sa.select(*stored_cols).where(keys.where(t.c.resident_id, "ids"))
        owners_q = sa.select(t.c.resident_id, t.c.id_number).where(keys.where(t.c.id_number, "idns"))
        for chunk in parsed_table(table, mapping, birth, pooling=pooling):
            report.warnings.extend(chunk.all_warnings())
            keep = _valid(chunk, report, first_row)
            keep = _one_person_one_resident(conn, owners_q, keys, chunk, keep, report, id_numbers)
            if progress:
                progress(len(chunk))
            rids = chunk.values["resident_id"]
            ids = [rids[i] for i in keep]
            found = conn.execute(stored_q, {"ids": keys.param(ids)}) if ids else ()
            stored = {row[0]: row[1:] for row in found}
            new = [i for i in keep if rids[i] not in stored] if stored else keep
            if fill_in and new:
                keep = _unknown_rejected(chunk, keep, new, report, id_title)
                new = []
            old = [
                i
                for i in keep
                if rids[i] in stored and not _same(chunk.values, i, compared, stored[rids[i]], derived_only)
            ]
            report.imported += len(new)
            report.updated += len(old)
            report.unchanged += len(keep) - len(new) - len(old)
            if status:
                _statuses(conn, app, path, chunk, keep, report, actor, now, write=not dry_run, before=new)
            if dry_run:
                continue
            if new:
                everyone = len(new) == len(chunk)  # no row rejected or stored: the columns as they are
                insert(
                    conn,
                    [chunk.values[n] if n in chunk.values else [None] * len(chunk) for _, n in inserted],
                    None if everyone else new,
                    stamps,
                )
            if old:
                executemany(
                    conn,
                    upd,
                    [
                        {"b_id": rids[i]} | {f"b_{cols[n]}": _get(chunk.values, n, i) for n in compared}
                        for i in old
                    ],
                )
        report.warnings.extend(table.skipped)
        if not dry_run:
            audit.record(
                conn,
                actor,
                "residents.import",
                path.name,
                file_sha256=_sha256(path),
                imported=report.imported,
                updated=report.updated,
                unchanged=report.unchanged,
                rejected=report.rejected,
                rejected_rows=sorted({p.row for p in report.errors if p.row}),
                **({"fill_in": True} if fill_in else {}),
            )

    _in_one_transaction(app, path, write)
    report.warnings.sort(key=lambda p: p.row or 0)
    return report


def _unknown_rejected(
    chunk: Chunk, keep: list[int], unknown: list[int], report: ImportReport, column: str
) -> list[int]:
    """A fill-in sheet completes residents of the register: a row whose id it does not hold is
    rejected (the cadre mistyped or added a row), never inserted. The kept rows without them."""
    for i in unknown:
        report.rejected += 1
        report.errors.append(
            Problem(
                "no resident with this id has been imported",
                row=chunk.rows[i],
                column=column,
            )
        )
    gone = set(unknown)
    return [i for i in keep if i not in gone]


def _statuses(
    conn: sa.Connection,
    app: App,
    path: Path,
    chunk: Chunk,
    keep: list[int],
    report: ImportReport,
    actor: str,
    now: datetime,
    *,
    write: bool,
    before: list[int],
) -> None:
    """The 状态 column: residents it says died, moved away or were struck off are marked as left
    (after their rows are written, in the import's transaction); one it calls 正常 who had left
    stays so, with a warning (bringing someone back is `residents reactivate`, a deliberate act)."""
    t = app.residents
    rids, statuses = chunk.values["resident_id"], chunk.values["left_as"]
    ids = [rids[i] for i in keep]
    q = sa.select(t.c.resident_id, t.c.left_as).where(t.c.resident_id.in_(ids))
    left: dict[str, str | None] = {rid: how for rid, how in conn.execute(q)}
    left |= {rids[i]: None for i in before}  # not yet inserted in a dry run
    by_kind: dict[LeftAs, list[str]] = {}
    for i in keep:
        rid, value = rids[i], statuses[i]
        if value in (None, ACTIVE):
            if value == ACTIVE and left.get(rid):
                report.warnings.append(
                    Problem(
                        f"resident {rid} has left ({left[rid]}); the roster says 正常: "
                        "run `notifier residents reactivate` if they are back in care",
                        row=chunk.rows[i],
                        column="left_as",
                    )
                )
            continue
        if not left.get(rid):
            by_kind.setdefault(LeftAs(value), []).append(rid)
    for kind, rids in by_kind.items():
        report.left += len(rids)
        if write:
            mark_left(conn, app, rids, kind, f"roster {path.name}: 状态", actor, now)


def _same(
    values: dict[str, list[Any]], i: int, names: list[str], stored: Any, keep_when_empty: set[str]
) -> bool:
    """Whether row `i` would change nothing that is stored (an empty derived value keeps the stored one)."""
    for name, old in zip(names, stored, strict=False):
        new = _get(values, name, i)
        if new != old and not (new is None and name in keep_when_empty):
            return False
    return True


def _one_person_one_resident(
    conn: sa.Connection,
    owners_q: sa.Select[tuple[str, str]],
    keys: KeysIn,
    chunk: Chunk,
    keep: list[int],
    report: ImportReport,
    seen: dict[str, tuple[int, str]],
) -> list[int]:
    """Reject a row whose ID number the register (one query per chunk) or an earlier row of the file
    (`seen`: ID number -> (row, resident id)) holds under another resident id. The rows kept.
    A number an earlier row holds is named by that row even once its chunk is written, so the
    report does not depend on where chunks end (nor differs from a dry run's)."""
    idcol = chunk.values.get("id_number")
    idns = {idcol[i] for i in keep if idcol[i]} if idcol is not None else None
    if not idns or idcol is None:
        return keep
    owners: dict[str, str] = {}
    for rid, idn in conn.execute(owners_q, {"idns": keys.param(sorted(idns))}):
        owners.setdefault(idn, rid)
    rids, rows = chunk.values["resident_id"], chunk.rows
    held = [i for i in keep if idcol[i]]
    if not owners and len(idns) == len(held) and seen.keys().isdisjoint(idns):
        seen.update([(idcol[i], (rows[i], rids[i])) for i in held])  # no number held by anyone else
        return keep
    kept = []
    for i in keep:
        idn, rid = idcol[i], rids[i]
        owner, earlier = owners.get(idn or ""), seen.get(idn or "")
        if owner is not None and owner != rid and (earlier is None or earlier[1] != owner):
            where = "in the register"
        elif earlier is not None and earlier[1] != rid:  # named by its row, whichever chunk wrote it
            owner, where = earlier[1], f"(row {earlier[0]})"
        else:
            if idn:
                seen.setdefault(idn, (rows[i], rid))
            kept.append(i)
            continue
        report.rejected += 1
        report.errors.append(
            Problem(
                f"ID number {mask_id_number(idn)} is already resident {owner}'s {where}: "
                "one person, one resident",
                row=rows[i],
                column="id_number",
            )
        )
    return kept


@contextmanager
def _gc_frozen() -> Iterator[None]:
    """The objects alive now (a CSV's rows, read in full, and everything the process holds) are
    left out of the cyclic collector's passes while the import runs: every full pass would
    otherwise walk the file's 100,000 row lists again, ~5 µs a row (measured by gc.callbacks). What
    the import allocates is collected as usual."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _in_one_transaction(app: App, path: Path, work: Callable[[sa.Connection], None]) -> None:
    """Run an import's writes in one transaction; a database failure becomes a clear error and
    leaves the register untouched."""
    try:
        with _gc_frozen(), app.engine.begin() as conn:
            work(conn)
    except sa.exc.DBAPIError as exc:
        reason = db_error_text(exc)
        hint = (
            "; another process is writing to the database (an import, `send` or `serve`?): "
            "try again when it is done"
            if "locked" in reason or "timeout" in reason.lower()
            else ""
        )
        raise NotifierError(
            f"{path}: import failed and was rolled back, the register is exactly as it was ({reason}){hint}"
        ) from exc


def import_records(
    app: App,
    kind: str,
    path: Path,
    *,
    actor: str = "import",
    dry_run: bool = False,
    sheet: str | None = None,
    progress: Progress | None = None,
    on_total: Callable[[int | None], None] | None = None,
    pooling: Pooling = DEFAULT,
) -> ImportReport:
    spec_kind = app.dictionary.records.get(kind)
    if spec_kind is None:
        from ..errors import did_you_mean

        raise InputError(
            f"unknown record kind {kind!r}{did_you_mean(kind, app.dictionary.records)}; "
            f"declared in {app.dictionary.source}: {', '.join(app.dictionary.records) or 'none'}"
        )
    report = ImportReport(str(path), dry_run=dry_run)
    matcher = HeaderMatcher({"resident_id": BUILTIN_FIELDS["resident_id"], **spec_kind.fields})
    table = _open(path, matcher, report, sheet, pooling)
    if on_total:
        on_total(table.total)
    mapping = _map_columns(table.header, matcher, str(path), report)
    rt = app.residents
    now = utcnow()
    # RETURNING lists only the rows really inserted (executemany rowcounts differ between drivers).
    ins = insert_new(app.engine, records, "kind", "fingerprint").returning(records.c.id)
    known_q = sa.select(rt.c.resident_id).where(rt.c.resident_id.in_(sa.bindparam("ids", expanding=True)))

    def keyed(rows: Iterator[ParsedRow]) -> Iterator[ParsedRow]:
        for r in rows:
            data = {k: v for k, v in r.values.items() if k != "resident_id"}
            r.values["_data"] = data
            r.values["_key"] = hashlib.sha256(
                audit.canonical_json([kind, r.values.get("resident_id"), data]).encode()
            ).hexdigest()
            yield r

    def write(conn: sa.Connection) -> None:
        for batch in _batches(
            keyed(rows_of(parsed_table(table, mapping, None, pooling=pooling))),
            report,
            progress,
        ):
            ids = {r.values["resident_id"] for r in batch}
            known = set(conn.execute(known_q, {"ids": list(ids)}).scalars())
            good = []
            for r in batch:
                if r.values["resident_id"] in known:
                    good.append(r)
                else:
                    report.rejected += 1
                    report.errors.append(
                        Problem("no resident with this id has been imported", row=r.row, column="resident_id")
                    )
            if dry_run or not good:
                report.imported += len(good)
                continue
            result = conn.execute(
                ins,
                [
                    {
                        "kind": kind,
                        "resident_id": r.values["resident_id"],
                        "record_date": r.values["_data"].get(spec_kind.date_field)
                        if spec_kind.date_field
                        else None,
                        "data": _jsonable(r.values["_data"]),
                        "fingerprint": r.values["_key"],
                        "imported_at": now,
                    }
                    for r in good
                ],
            )
            inserted = len(result.all())
            report.imported += inserted
            report.unchanged += len(good) - inserted
        report.warnings.extend(table.skipped)
        if not dry_run:
            audit.record(
                conn,
                actor,
                "records.import",
                f"{kind}:{path.name}",
                file_sha256=_sha256(path),
                imported=report.imported,
                unchanged=report.unchanged,
                rejected=report.rejected,
                rejected_rows=sorted({p.row for p in report.errors if p.row}),
            )

    _in_one_transaction(app, path, write)
    report.warnings.sort(key=lambda p: p.row or 0)
    return report


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    from datetime import date
    from decimal import Decimal

    return {
        k: (v.isoformat() if isinstance(v, date) else str(v) if isinstance(v, Decimal) else v)
        for k, v in data.items()
    }


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
