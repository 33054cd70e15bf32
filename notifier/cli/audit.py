"""`audit verify | checkpoint | export | coverage | resident`: what auditors check and take away."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..output import console, err_console
from .common import UNMASK_HELP, acting_flags, command, group, iso_date, open_app, unmasking
from .render import Payload, show, table

if TYPE_CHECKING:
    from ..audit.checkpoints import Verification
    from ..audit.coverage import Coverage, ResidentHistory
    from ..audit.export import ExportResult
    from .common import SubParsers


def register(sub: SubParsers) -> None:
    aud = group(sub, "audit", "the audit log")
    s = command(
        aud, "verify", cmd_verify, "recompute the hash chain; compare with the head and the checkpoints"
    )
    s.add_argument(
        "--from-checkpoint",
        action="store_true",
        help="start after the newest checkpoint instead of the first event",
    )
    command(aud, "checkpoint", cmd_checkpoint, "append the chain head to the checkpoint file")
    s = command(aud, "export", cmd_export, "events as csv, jsonl or xlsx, masked, ending with the chain head")
    s.add_argument("--run", type=int)
    s.add_argument("--resident", metavar="ID")
    s.add_argument(
        "--from", dest="date_from", type=iso_date, metavar="DATE", help="first day (configured timezone)"
    )
    s.add_argument("--to", dest="date_to", type=iso_date, metavar="DATE", help="last day, included")
    s.add_argument("--format", required=True, choices=("csv", "jsonl", "xlsx"))
    s.add_argument("-o", "--output", required=True, type=Path, metavar="FILE")
    s.add_argument("--unmask", action="store_true", help=UNMASK_HELP)
    s.add_argument("--reason", metavar="TEXT", help="with --unmask: why (recorded in the audit log)")
    acting_flags(s, "with --unmask: assert the acting account's name")
    s = command(
        aud, "coverage", cmd_coverage, "every resident of a run with their outcome; totals = audience"
    )
    s.add_argument("run", type=int)
    s.add_argument("--format", choices=("csv", "xlsx"), help="write the per-resident list to -o FILE")
    s.add_argument("-o", "--output", type=Path, metavar="FILE")
    s = command(aud, "resident", cmd_resident, "every delivery to one resident across runs")
    s.add_argument("resident_id")
    s = command(
        aud, "pseudonym", cmd_pseudonym, "the subject events about a phone number carry (to search for)"
    )
    s.add_argument("phone")


def cmd_verify(args: argparse.Namespace) -> int:
    from ..audit.checkpoints import verification

    checked = verification(open_app(args), from_checkpoint=args.from_checkpoint)
    show(checked, _verified, args.json)
    return checked.exit_code


def _verified(v: Verification) -> None:
    from ..audit.checkpoints import SIGNATURE_PROBLEM

    r, cps = v.result, v.checkpoints
    if r.ok:
        verdict = "intact"
    elif r.first_bad is None:
        verdict = f"BROKEN ({r.kind}): {r.reason}"
    else:
        verdict = f"BROKEN at event {r.first_bad} ({r.kind}): {r.reason}"
    console.print(
        f"audit log: {r.events} events, {r.checkpoints_matched} of {cps['count']} checkpoint(s) matched "
        f"({cps['signed']} signed), " + verdict,
        markup=False,
    )
    for p in r.problems[1 if r.kind == SIGNATURE_PROBLEM else 0 :]:  # the first is in the verdict
        console.print(f"  {p['file']}:{p['line']}: {p['message']}", markup=False)


def cmd_checkpoint(args: argparse.Namespace) -> int:
    from ..audit.checkpoints import take_checkpoint

    show(Payload(take_checkpoint(open_app(args))), _checkpointed, args.json)
    return 0


def _checkpointed(c: Payload) -> None:
    out = c.data
    console.print(
        f"checkpoint: event {out['seq']} hash {out['hash']} at {out['at']} -> {out['file']}", markup=False
    )


def cmd_export(args: argparse.Namespace) -> int:
    from ..audit.export import ExportFilter, export_events

    app = open_app(args)
    f = ExportFilter(args.run, args.resident, args.date_from, args.date_to)
    by, reason = unmasking(app, args, "export unmasked") if args.unmask else (args.by, None)
    show(
        export_events(app, args.output, args.format, f, unmask=args.unmask, by=by, reason=reason),
        _exported,
        args.json,
    )
    return 0


def _exported(e: ExportResult) -> None:
    console.print(
        f"{e.events} event(s) {'masked' if e.masked else 'unmasked'} -> {e.file}; "
        f"chain head {e.head_seq} {e.head_hash}",
        markup=False,
    )


@dataclass(frozen=True)
class Covered:
    """A run's coverage totals, once the per-resident list was read (to a file, or to nowhere)."""

    coverage: Coverage
    file: Path | None

    def as_json(self) -> dict[str, Any]:
        return self.coverage.as_json() | ({"file": str(self.file)} if self.file else {})


def cmd_coverage(args: argparse.Namespace) -> int:
    """Exit 1 when the residents accounted for do not add up to the audience."""
    from ..audit.coverage import coverage, write_coverage
    from ..errors import InputError

    app = open_app(args)
    if bool(args.format) != bool(args.output):
        raise InputError("--format and -o FILE go together")
    if args.output:
        cov = write_coverage(app, args.run, args.output, args.format)
        show(Covered(cov, args.output), _covered, args.json)
        return 0 if cov.balanced else 1
    cov, residents = coverage(app, args.run)
    if args.json:
        _stream_json(residents, cov)
        return 0 if cov.balanced else 1
    else:
        for _ in residents:  # the totals fill in as the list is read
            pass
    show(Covered(cov, args.output), _covered, args.json)
    return 0 if cov.balanced else 1


def _stream_json(residents: Iterator[dict[str, Any]], cov: Coverage) -> None:
    """One object, the resident list streamed into it (constant memory for any run size)."""
    sys.stdout.write('{"residents":[')
    for i, r in enumerate(residents):
        sys.stdout.write(("," if i else "") + json.dumps(r, ensure_ascii=False))
    sys.stdout.write("]," + json.dumps(cov.as_json(), ensure_ascii=False)[1:] + "\n")


def _covered(c: Covered) -> None:
    cov = c.coverage
    t = table(
        *cov.totals,
        "total",
        title=f"run {cov.run} ({cov.rule}, {cov.status}): audience {cov.audience}, review {cov.review}",
        justify="right",
    )
    t.add_row(*map(str, cov.totals.values()), str(cov.counted))
    console.print(t)
    skipped = {k: v for k, v in cov.skipped_by_reason.items() if v}
    if skipped:
        console.print("skipped: " + ", ".join(f"{k} {v}" for k, v in skipped.items()))
    if c.file:
        console.print(f"per-resident list -> {c.file}", markup=False)
    if not cov.balanced:
        err_console.print(f"error: {cov.counted} residents accounted for, audience is {cov.audience}")


def cmd_resident(args: argparse.Namespace) -> int:
    from ..audit.coverage import resident_history

    show(resident_history(open_app(args), args.resident_id), _history, args.json)
    return 0


def cmd_pseudonym(args: argparse.Namespace) -> int:
    """Events name a phone number by its keyed hash (audit/pseudonyms.py): this is how an auditor
    holding the key finds them. The number is typed, never printed back in full."""
    from ..audit.pseudonyms import subject_of_phone
    from ..masking import mask_phone
    from ..optouts import parse_phone

    app = open_app(args)
    phone = parse_phone(args.phone)
    subject = subject_of_phone(app.engine, app.config, phone)
    out = Payload({"phone": mask_phone(phone), "subject": subject})
    show(out, lambda r: console.print(r.data["subject"], markup=False), args.json)
    return 0


def _history(h: ResidentHistory) -> None:
    t = table(
        "run",
        "rule",
        "channel",
        "status",
        "recipient",
        "at",
        "reason",
        title=f"resident {h.resident}" + ("" if h.in_register else " (not in the register)"),
    )
    for d in h.deliveries:
        t.add_row(
            str(d["run"]),
            d["rule"],
            d["channel"],
            d["status"],
            d["recipient"] or "",
            (d["at"] or "")[:19],
            d["reason"] or "",
        )
    console.print(t)
