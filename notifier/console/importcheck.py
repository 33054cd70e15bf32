"""What the 花名册导入 pages show of an ImportReport: counts, the column mapping with the fields'
Chinese labels, and the problems located by row and column, translated (i18n/patterns.py)
and masked again (masking.mask_text) so no phone or ID number reaches the page whole."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import Problem
from ..fields import FieldSpec
from ..i18n.patterns import translate
from ..masking import mask_text
from ..residents.importer import ImportReport

SHOWN = 500  # problems of each kind listed on the page; the counts say how many more there are


@dataclass(frozen=True)
class ShownProblem:
    row: int | None
    column: str
    message: str


@dataclass(frozen=True)
class MappedColumn:
    header: str  # as written in the file
    field: str
    label: str  # the field's label from fields.yaml (or the built-in one)


@dataclass(frozen=True)
class CheckView:
    name: str
    dry_run: bool
    rows: int  # data rows read (footer rows not counted)
    valid: int
    imported: int
    updated: int
    unchanged: int
    rejected: int
    left: int  # residents the 状态 column marks as left (deceased, moved away)
    header_row: int
    sheet: str | None
    encoding: str | None
    columns: list[MappedColumn]
    errors: list[ShownProblem]
    warnings: list[ShownProblem]
    more_errors: int
    more_warnings: int
    fill_in: bool = False  # a review queue's fill-in sheet: only filled cells are written


def check_view(report: ImportReport, name: str, specs: dict[str, FieldSpec], language: str) -> CheckView:
    """The report as the page shows it; `name` is the file's name as uploaded (not where it is kept)."""
    header_of = {f: h for h, f in report.columns}

    def shown(problems: list[Problem]) -> list[ShownProblem]:
        out = []
        for p in problems[:SHOWN]:
            column = "" if p.column is None else str(p.column)
            out.append(
                ShownProblem(p.row, header_of.get(column, column), mask_text(translate(p.message, language)))
            )
        return out

    valid = report.imported + report.updated + report.unchanged
    return CheckView(
        name=name,
        dry_run=report.dry_run,
        rows=valid + report.rejected,
        valid=valid,
        imported=report.imported,
        updated=report.updated,
        unchanged=report.unchanged,
        rejected=report.rejected,
        left=report.left,
        header_row=report.header_row,
        sheet=report.sheet,
        encoding=report.encoding,
        columns=[MappedColumn(h, f, specs[f].label if f in specs else f) for h, f in report.columns],
        errors=shown(report.errors),
        warnings=shown(report.warnings),
        more_errors=max(len(report.errors) - SHOWN, 0),
        more_warnings=max(len(report.warnings) - SHOWN, 0),
        fill_in=report.fill_in,
    )


def file_problem(message: str, kept_at: str, name: str, language: str) -> str:
    """A refusal of the whole file (InputError) as the page shows it: said of the uploaded name,
    not of the private path the file was kept at, translated and masked."""
    text = message.replace(f"{kept_at}: ", "", 1) if message.startswith(f"{kept_at}: ") else message
    text = text.replace(kept_at, name)
    return mask_text(translate(text, language))
