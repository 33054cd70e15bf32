"""Cells of one spreadsheet row -> a typed, validated row with its errors and warnings.

Pure work on values (no database, no report), so chunks of rows can be parsed in worker
processes (residents/pool.py) and give exactly what the in-process path gives.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import Problem
from ..fields import FieldSpec, norm_key
from ..masking import mask_email, mask_id_number, mask_phone, mask_text
from .validate import check_id_number, first_phone, id_birth_date, normalize_email

MAX_CELL = 10_000  # characters; a longer cell is a pasted document or an attack, not a roster value


@dataclass
class ParsedRow:
    row: int
    values: dict[str, Any]  # field name -> typed value (None when empty)
    errors: list[Problem]
    warnings: list[Problem]


def parse_rows(
    table_rows: Iterable[tuple[int, list[Any]]],
    header: list[str],
    mapping: list[tuple[int, FieldSpec]],
    birth: FieldSpec | None = None,
) -> Iterator[ParsedRow]:
    contact = {"phone", "email"}
    special = {
        "phone": first_phone,
        "email": normalize_email,
        "id_number": check_id_number,
        "resident_id": norm_key,
    }
    columns = [
        (idx, spec.name, header[idx], special.get(spec.name) or spec.converter()) for idx, spec in mapping
    ]
    titles = {name: title for _, name, title, _ in columns}
    rid_col = titles["resident_id"]
    if "id_number" not in titles:
        birth = None
    for rownum, cells in table_rows:
        values: dict[str, Any] = {}
        errors: list[Problem] = []
        warnings: list[Problem] = []
        width = len(cells)
        for idx, name, title, convert in columns:
            raw = cells[idx] if idx < width else None
            if isinstance(raw, str):
                raw = raw.strip() or None
                if raw is not None and len(raw) > MAX_CELL:
                    values[name] = None
                    errors.append(
                        Problem(
                            f"the cell holds {len(raw):,} characters; at most {MAX_CELL:,} are accepted",
                            row=rownum,
                            column=title,
                        )
                    )
                    continue
            if raw is None:
                values[name] = None
                continue
            try:
                values[name] = convert(raw)
            except ValueError as exc:
                if name in contact:  # masked as what it was meant to be: a mistyped number is still one
                    values[name] = None
                    shown = mask_phone(str(raw)) if name == "phone" else mask_email(str(raw))
                    warnings.append(
                        Problem(f"{shown}: {exc}; dropped, row imported", row=rownum, column=title)
                    )
                elif name == "id_number":
                    errors.append(Problem(f"{mask_id_number(str(raw))}: {exc}", row=rownum, column=title))
                else:
                    errors.append(Problem(mask_text(str(exc)), row=rownum, column=title))
        phone = values.get("phone")
        if phone is not None:
            (values["phone"], values["phone_kind"]), more = phone
            if more:
                warnings.append(
                    Problem(
                        f"the cell holds more than one number; the first usable one, "
                        f"{mask_phone(values['phone'])}, was used",
                        row=rownum,
                        column=titles["phone"],
                    )
                )
        elif "phone" in values:
            values["phone_kind"] = None
        if not values.get("resident_id"):
            errors.insert(0, Problem("resident id is missing", row=rownum, column=rid_col))
        if birth is not None and values.get("id_number"):
            _check_birth(values, birth, titles.get(birth.name), rownum, warnings)
        yield ParsedRow(rownum, values, errors, warnings)


def _check_birth(
    values: dict[str, Any], birth: FieldSpec, title: str | None, rownum: int, warnings: list[Problem]
) -> None:
    """Fill a missing birth date from the ID number; warn when the two disagree (the cell is kept)."""
    born = id_birth_date(values["id_number"])
    given = values.get(birth.name)
    if given is None:
        values[birth.name] = born
    elif given != born:
        if (
            birth.precision == "month"
            and given.day == 1
            and (given.year, given.month) == (born.year, born.month)
        ):
            values[birth.name] = born
        else:
            warnings.append(
                Problem(
                    f"{birth.label} {given.isoformat()} contradicts the birth date in the ID number; "
                    "the cell's date was kept",
                    row=rownum,
                    column=title or birth.label,
                )
            )
