"""The data dictionary (`rules/fields.yaml`): which resident fields and record kinds exist,
their types, labels, units, the spreadsheet headers they appear under, and how a cell
value is read into a typed value.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Any, Callable

from .errors import InputError, Problem, did_you_mean
from .yamlsafe import YList, YMap, load_yaml


class FieldType(StrEnum):
    TEXT = "text"
    INT = "int"
    DECIMAL = "decimal"
    DATE = "date"
    BOOL = "bool"
    ENUM = "enum"


NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,62}")
TRUE_WORDS = frozenset({"是", "true", "1", "y", "yes", "有", "√", "✓", "✔", "☑"})
FALSE_WORDS = frozenset({"否", "false", "0", "n", "no", "无", "×", "✗", "✘"})
PRECISIONS = ("day", "month")
_DATE_RE = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?")
_COMPACT_DATE_RE = re.compile(r"(\d{4})(\d{2})(\d{2})")
_MONTH_RE = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*月?|(\d{4})(\d{2})")
_SERIAL_RE = re.compile(r"\d{4,5}(?:\.0+)?")
_EXCEL_EPOCH = date(1899, 12, 30)  # Excel's day 0 (serials from 61 on, past its fictitious 1900-02-29)
SERIALS = range(3000, 100000)  # 1908-03-18 .. 2173-10-14: below that, a number is a year or a typo
_NUMBER_JUNK = str.maketrans("", "", ",，¥￥元 ")
_INVISIBLE = re.compile("[\u200b-\u200f\u2060\ufeff\u00ad]")


def norm_key(text: str) -> str:
    """NFKC, invisible characters (zero-width spaces, BOM) removed, trimmed: how ids are compared."""
    text = str(text)
    if not text.isascii():
        text = _INVISIBLE.sub("", unicodedata.normalize("NFKC", text))
    return text.strip()


def norm_header(text: str) -> str:
    return re.sub(r"\s+", "", norm_key(text)).replace("（", "(").replace("）", ")").casefold()


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: FieldType
    label: str
    unit: str = ""
    columns: tuple[str, ...] = ()
    values: dict[str, tuple[str, ...]] = field(default_factory=dict)
    builtin: bool = False
    precision: str = "day"  # dates: "month" accepts 1996.12 (stored as its first day)
    lookup: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        """Enum spellings, normalised once: a cell's text -> canonical value."""
        for canonical, spellings in self.values.items():
            for s in (canonical, *spellings):
                self.lookup[norm_header(s)] = self.lookup[s] = canonical

    def __hash__(self) -> int:
        return hash(self.name)

    def parse(self, raw: Any) -> Any:
        """A spreadsheet cell to a typed value (None when empty). ValueError says why not."""
        if raw is None:
            return None
        if isinstance(raw, str):
            raw = raw.strip()
            if raw == "":
                return None
        t = self.type
        if t is FieldType.TEXT:
            return str(raw)
        if t is FieldType.ENUM:
            found = self.lookup.get(raw) if isinstance(raw, str) else None
            found = found or self.lookup.get(norm_header(str(raw)))
            if found is None:
                raise ValueError(f"{raw!r} is not an accepted spelling: {self.spellings()}")
            return found
        if t is FieldType.BOOL:
            if isinstance(raw, bool):
                return raw
            word = str(raw).casefold()
            if not word.isascii():
                word = norm_key(word)
            if word in TRUE_WORDS:
                return True
            if word in FALSE_WORDS:
                return False
            raise ValueError(f"{raw!r} is not a yes/no value (是/否, 有/无, √/×, true/false, 1/0, Y/N)")
        if t is FieldType.DATE:
            return parse_date(raw, month_ok=self.precision == "month", label=self.label)
        if t is FieldType.INT:
            if isinstance(raw, bool):
                raise ValueError(f"{raw!r} is not a whole number")
            if isinstance(raw, int):
                return raw
            num = _decimal(raw, self.unit)
            if num != num.to_integral_value():
                raise ValueError(f"{raw!r} is not a whole number")
            return int(num)
        return _decimal(raw, self.unit)  # DECIMAL

    def spellings(self) -> str:
        """The accepted enum spellings, for error messages."""
        where = "built in" if self.builtin else "from fields.yaml"
        listed = "; ".join(f"{c}: {'/'.join(dict.fromkeys((c, *s)))}" for c, s in self.values.items())
        return f"{listed} ({where}, field {self.name})"

    def converter(self) -> Callable[[Any], Any]:
        """A fast cell reader for bulk imports: the common text forms first, `parse` for the rest."""
        t, parse = self.type, self.parse
        if t is FieldType.TEXT:
            return lambda raw: raw if isinstance(raw, str) else parse(raw)
        if t is FieldType.ENUM:
            lookup = self.lookup
            return lambda raw: lookup.get(raw) or parse(raw)
        if t is FieldType.BOOL:
            quick = {w: True for w in TRUE_WORDS} | {w: False for w in FALSE_WORDS} | {"Y": True, "N": False}

            def read_bool(raw: Any) -> Any:
                found = quick.get(raw) if isinstance(raw, str) else None
                return parse(raw) if found is None else found

            return read_bool
        if t is FieldType.DATE:

            def read_date(raw: Any) -> Any:
                if isinstance(raw, str) and len(raw) == 10 and raw[4] == "-" and raw[7] == "-":
                    try:
                        return date.fromisoformat(raw)
                    except ValueError:
                        pass
                return parse(raw)

            return read_date
        if t is FieldType.DECIMAL:

            def read_decimal(raw: Any) -> Any:
                if isinstance(raw, str):
                    try:
                        value = Decimal(raw)
                        if value.is_finite():
                            return value
                    except InvalidOperation:
                        pass
                return parse(raw)

            return read_decimal

        def read_int(raw: Any) -> Any:
            return int(raw) if isinstance(raw, str) and raw.isdigit() else parse(raw)

        return read_int


def _decimal(raw: Any, unit: str = "") -> Decimal:
    """A number, allowing thousands separators, currency signs and the field's own unit (8.5亩, 3人)."""
    if isinstance(raw, float):
        return Decimal(repr(raw))
    text = str(raw).strip()
    if unit and text.endswith(unit):
        text = text[: -len(unit)]
    try:
        value = Decimal(text.translate(_NUMBER_JUNK))
    except InvalidOperation:
        raise ValueError(f"{raw!r} is not a number") from None
    if not value.is_finite():
        raise ValueError(f"{raw!r} is not a number")
    return value


def _serial(value: float, text: str) -> date:
    """An Excel date serial (a date cell formatted as a number, or such a cell saved to CSV)."""
    if value != int(value) or int(value) not in SERIALS:
        raise ValueError(f"{text!r} is not a date (use 2026-03-02)")
    return _EXCEL_EPOCH + timedelta(days=int(value))


def parse_date(raw: Any, *, month_ok: bool = False, label: str = "this field") -> date:
    """A date from a cell: a date, 2026-03-02 / 2026.3.2 / 2026年3月2日 / 20260302, an Excel serial,
    or (when `month_ok`) a month such as 1996.12, read as its first day."""
    if isinstance(raw, datetime):
        return raw.date()
    if isinstance(raw, date):
        return raw
    if isinstance(raw, bool):
        raise ValueError(f"{raw!r} is not a date (use 2026-03-02)")
    if isinstance(raw, (int, float)):
        if 1890 <= raw < 2200 and raw != int(raw) and len(repr(raw)) == 7:  # 1996.12 typed into a number cell
            return parse_date(repr(raw), month_ok=month_ok, label=label)
        return _serial(raw, repr(raw))
    text = str(raw).strip()
    m = _DATE_RE.fullmatch(text) or _COMPACT_DATE_RE.fullmatch(text)
    if not m:
        if _SERIAL_RE.fullmatch(text):
            return _serial(float(text), text)
        month = _MONTH_RE.fullmatch(text)
        if month:
            year, mon = (int(g) for g in (month.groups()[:2] if month.group(1) else month.groups()[2:]))
            if not month_ok:
                raise ValueError(
                    f"{text!r} gives only a year and month; {label} needs a full date such as "
                    f"{year}-{mon:02d}-01 (a field may accept months: precision: month in fields.yaml)"
                )
            if not 1 <= mon <= 12:
                raise ValueError(f"{text!r} is not a valid month")
            return date(year, mon, 1)
        raise ValueError(f"{text!r} is not a date (use 2026-03-02)")
    try:
        return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        raise ValueError(f"{text!r} is not a valid date") from None


def _builtin(
    name: str,
    label: str,
    *columns: str,
    type: FieldType = FieldType.TEXT,
    values: dict[str, tuple[str, ...]] | None = None,
) -> FieldSpec:
    return FieldSpec(name, type, label, columns=(name, label, *columns), values=values or {}, builtin=True)


BUILTIN_FIELDS: dict[str, FieldSpec] = {
    f.name: f
    for f in (
        # not 户编号: that is a household's number (fields.yaml's household_id), shared by its members
        _builtin("resident_id", "居民编号", "编号", "人员编号"),
        _builtin("name", "姓名", "户主姓名"),
        _builtin("phone", "手机号码", "手机号", "手机", "联系电话", "电话"),
        _builtin("email", "电子邮箱", "邮箱", "email", "e-mail", "电子邮件"),
        _builtin("id_number", "身份证号", "身份证号码", "公民身份号码"),
        _builtin("address", "地址", "家庭住址", "住址", "通讯地址"),
        _builtin("village", "村", "村组", "所在村", "村(社区)", "行政村"),
        _builtin("township", "乡镇", "乡镇(街道)", "镇", "街道"),
        _builtin(
            "preferred_channel",
            "首选通知方式",
            "通知方式",
            type=FieldType.ENUM,
            values={
                "sms": ("短信", "手机短信"),
                "email": ("邮件", "电子邮件"),
                "letter": ("信件", "纸质", "邮寄"),
            },
        ),
        # 状态: a roster saying 死亡 / 迁出 / 注销 marks the resident as left (residents/leaving.py)
        _builtin(
            "left_as",
            "状态",
            "人员状态",
            "在册状态",
            type=FieldType.ENUM,
            values={
                "active": ("正常", "在册", "在世", "健在"),
                "deceased": ("死亡", "已故", "去世", "亡故", "身故"),
                "moved": ("迁出", "外迁", "迁走"),
                "other": ("注销", "其他"),
            },
        ),
    )
}


@dataclass(frozen=True)
class RecordKind:
    name: str
    label: str
    fields: dict[str, FieldSpec]
    date_field: str | None


@dataclass
class DataDictionary:
    fields: dict[str, FieldSpec]  # declared fields (builtins are in BUILTIN_FIELDS)
    records: dict[str, RecordKind]
    domains: dict[str, str]
    source: str
    text: str = ""  # file contents, part of a rule's version

    def field(self, name: str) -> FieldSpec | None:
        return BUILTIN_FIELDS.get(name) or self.fields.get(name)

    def all_fields(self) -> dict[str, FieldSpec]:
        return {**BUILTIN_FIELDS, **self.fields}


def _field_spec(name: str, body: Any, where: YMap, file: str, problems: list[Problem]) -> FieldSpec | None:
    def bad(msg: str, mark: tuple[int, int]) -> None:
        problems.append(Problem(msg, file=file, line=mark[0], column=mark[1]))

    if not NAME_RE.fullmatch(name):
        bad(f"field name {name!r} must be lower-case letters, digits and _", where.key_where(name))
        return None
    if name in BUILTIN_FIELDS:
        bad(f"{name!r} is a built-in field and needs no declaration", where.key_where(name))
        return None
    if not isinstance(body, YMap):
        bad(f"field {name!r} needs a mapping with type, label and columns", where.where(name))
        return None
    known = {"type", "label", "unit", "columns", "values", "precision"}
    for key in body:
        if key not in known:
            bad(f"unknown key {key!r} in field {name!r}{did_you_mean(key, known)}", body.key_where(key))
    try:
        ftype = FieldType(str(body.get("type")))
    except ValueError:
        bad(
            f"field {name!r}: type must be one of {', '.join(t.value for t in FieldType)}"
            f"{did_you_mean(str(body.get('type')), [t.value for t in FieldType])}",
            body.where("type"),
        )
        return None
    columns = body.get("columns", [])
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        bad(f"field {name!r}: columns must be a list of spreadsheet headers", body.where("columns"))
        columns = []
    values: dict[str, tuple[str, ...]] = {}
    if ftype is FieldType.ENUM:
        raw_values = body.get("values")
        if not isinstance(raw_values, YMap) or not raw_values:
            bad(
                f"enum field {name!r} needs values: {{canonical: [spellings...]}}",
                body.where("values") if "values" in body else body.mark,
            )
        else:
            for canonical, spellings in raw_values.items():
                if not isinstance(spellings, list):
                    bad(f"enum value {canonical!r} needs a list of spellings", raw_values.where(canonical))
                    continue
                values[canonical] = tuple(str(s) for s in spellings)
    label = str(body.get("label") or name)
    precision = str(body.get("precision", "day"))
    if "precision" in body and (ftype is not FieldType.DATE or precision not in PRECISIONS):
        bad(
            f"field {name!r}: precision applies to date fields and is one of {', '.join(PRECISIONS)}",
            body.where("precision"),
        )
        precision = "day"
    return FieldSpec(
        name,
        ftype,
        label,
        str(body.get("unit") or ""),
        tuple([name, label, *columns]),
        values,
        precision=precision,
    )


def load_dictionary(path: Path) -> DataDictionary:
    """Read and check fields.yaml; raise InputError with every located problem."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"data dictionary {file} not found") from None
    doc = load_yaml(text, file)
    problems: list[Problem] = []
    if not isinstance(doc, YMap):
        raise InputError(f"{file}: expected a mapping with fields:, records:, domains:")
    for key in doc:
        if key not in ("fields", "records", "domains"):
            m = doc.key_where(key)
            problems.append(
                Problem(
                    f"unknown section {key!r}{did_you_mean(key, ['fields', 'records', 'domains'])}",
                    file=file,
                    line=m[0],
                    column=m[1],
                )
            )
    fields: dict[str, FieldSpec] = {}
    raw_fields = doc.get("fields") or YMap()
    for name, body in raw_fields.items():
        spec = _field_spec(name, body, raw_fields, file, problems)
        if spec:
            fields[name] = spec
    records: dict[str, RecordKind] = {}
    raw_records = doc.get("records") or YMap()
    for kind, body in raw_records.items():
        if not isinstance(body, YMap) or not isinstance(body.get("fields"), YMap):
            m = raw_records.where(kind)
            problems.append(Problem(f"record kind {kind!r} needs fields:", file=file, line=m[0], column=m[1]))
            continue
        rfields: dict[str, FieldSpec] = {}
        for name, fbody in body["fields"].items():
            spec = _field_spec(name, fbody, body["fields"], file, problems)
            if spec:
                rfields[name] = spec
        dates = [f.name for f in rfields.values() if f.type is FieldType.DATE]
        date_field = body.get("date") or (dates[0] if len(dates) == 1 else None)
        if date_field is not None and date_field not in dates:
            m = body.where("date")
            problems.append(
                Problem(
                    f"date: {date_field!r} is not a date field of {kind!r}"
                    + did_you_mean(str(date_field), dates),
                    file=file,
                    line=m[0],
                    column=m[1],
                )
            )
        records[kind] = RecordKind(kind, str(body.get("label") or kind), rfields, date_field)
    domains = {str(k): str(v) for k, v in (doc.get("domains") or {}).items()}
    if problems:
        raise InputError(f"{file}: data dictionary has errors", problems)
    return DataDictionary(fields, records, domains, file, text)


def header_map(specs: dict[str, FieldSpec]) -> dict[str, FieldSpec]:
    """Normalised spreadsheet header -> field."""
    out: dict[str, FieldSpec] = {}
    for spec in specs.values():
        for col in spec.columns:
            out.setdefault(norm_header(col), spec)
    return out


__all__ = [
    "BUILTIN_FIELDS",
    "norm_key",
    "DataDictionary",
    "FieldSpec",
    "FieldType",
    "RecordKind",
    "YList",
    "header_map",
    "load_dictionary",
    "norm_header",
    "parse_date",
]
