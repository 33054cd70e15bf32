"""`residents import | deactivate | reactivate` and `records import`: registers and related records
from CSV or XLSX; residents who left (deceased, moved away) and the mistakes undone."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..identity.permissions import Permission
from ..output import console, progress_bar
from ..residents.leaving import LeftAs
from .common import act, acting_flags, command, group, open_app
from .render import Payload, problems_table, show

if TYPE_CHECKING:
    from ..residents.importer import ImportReport
    from .common import SubParsers


def register(sub: SubParsers) -> None:
    res = group(sub, "residents", "resident register")
    s = command(
        res, "import", cmd_residents_import, "import a CSV (UTF-8/GBK) or XLSX register; re-import updates"
    )
    _import_arguments(s)
    s = command(
        res,
        "deactivate",
        cmd_deactivate,
        "residents who left (deceased, moved away): no notice from now on, pending ones skipped",
    )
    s.add_argument("ids", nargs="+", metavar="ID")
    s.add_argument("--as", dest="left_as", choices=[x.value for x in LeftAs], default=LeftAs.OTHER.value)
    s.add_argument("--reason", required=True, help="why (recorded in the audit log)")
    acting_flags(s)
    s = command(res, "reactivate", cmd_reactivate, "undo a mistaken deactivate: notices of new runs again")
    s.add_argument("ids", nargs="+", metavar="ID")
    s.add_argument("--reason", required=True, help="why (recorded in the audit log)")
    acting_flags(s)
    rec = group(sub, "records", "related records such as grants")
    s = command(rec, "import", cmd_records_import, "import related records of KIND (declared in fields.yaml)")
    s.add_argument("kind")
    _import_arguments(s)


def _import_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("file", type=Path)
    s.add_argument("--dry-run", action="store_true", help="validate and count, change nothing")
    acting_flags(s)
    s.add_argument("--sheet", help="XLSX: the sheet to import (default: the first sheet with a header row)")


def cmd_residents_import(args: argparse.Namespace) -> int:
    from ..residents.importer import import_residents

    return _import(args, import_residents)


def cmd_records_import(args: argparse.Namespace) -> int:
    from ..residents.importer import import_records

    return _import(args, import_records, args.kind)


def _import(args: argparse.Namespace, importer: Callable[..., ImportReport], *lead: Any) -> int:
    """Run `importer(app, *lead, file, ...)` under a progress bar; exit 3 when rows were rejected."""
    app = open_app(args)
    who = act(app, args, Permission.IMPORT, "import residents and records", legacy_by="import")
    with progress_bar(f"importing {args.file.name}", None, not args.json) as (advance, set_total):
        report = importer(
            app,
            *lead,
            args.file,
            actor=who.name,
            dry_run=args.dry_run,
            sheet=args.sheet,
            progress=advance,
            on_total=set_total,
        )
    show(report, _imported, args.json)
    return report.exit_code


def _imported(report: ImportReport) -> None:
    verb = "would import" if report.dry_run else "imported"
    console.print(
        f"{report.file}: {verb} {report.imported}, updated {report.updated}, unchanged {report.unchanged}"
        f", rejected {report.rejected}"
        + (
            f", {'would mark' if report.dry_run else 'marked'} {report.left} as left (状态)"
            if report.left
            else ""
        ),
        markup=False,
    )
    console.print(
        f"header on row {report.header_row}"
        + (f" of sheet {report.sheet}" if report.sheet else "")
        + (f", encoding {report.encoding}" if report.encoding else ""),
        markup=False,
    )
    if report.fill_in:
        console.print(
            "fill-in sheet of a review queue: only the filled cells were "
            + ("checked" if report.dry_run else "written")
            + "; empty cells stay missing",
            markup=False,
        )
    if report.errors:
        problems_table("rejected rows", report.errors)
    if report.warnings:
        problems_table("warnings", report.warnings, limit=20)


def cmd_deactivate(args: argparse.Namespace) -> int:
    from ..residents.leaving import deactivate

    app = open_app(args)
    who = act(app, args, Permission.IMPORT, "mark residents as left")
    out = deactivate(app, args.ids, reason=args.reason, left_as=LeftAs(args.left_as), by=who.name)
    show(Payload(out), _deactivated, args.json)
    return 0


def _deactivated(r: Payload) -> None:
    out = r.data
    console.print(
        f"{len(out['left'])} resident(s) marked as left ({out['as']}); {out['deliveries_skipped']} pending "
        f"deliveries skipped"
        + (f"; already left: {', '.join(out['already_left'])}" if out["already_left"] else ""),
        markup=False,
    )


def cmd_reactivate(args: argparse.Namespace) -> int:
    from ..residents.leaving import reactivate

    app = open_app(args)
    who = act(app, args, Permission.IMPORT, "reactivate residents")
    out = reactivate(app, args.ids, reason=args.reason, by=who.name)
    show(Payload(out), _reactivated, args.json)
    return 0


def _reactivated(r: Payload) -> None:
    out = r.data
    console.print(
        f"{len(out['returned'])} resident(s) receive notices of new runs again"
        + (f"; had not left: {', '.join(out['not_left'])}" if out["not_left"] else ""),
        markup=False,
    )
