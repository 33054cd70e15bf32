"""Reading rule files: structure, names, types and values checked, every problem located.

Nothing here touches the database: a loaded Rule is a checked description that
`rules.compile` turns into SQL.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from ..audit.log import canonical_json
from ..errors import InputError, Problem, RuleError, did_you_mean
from ..fields import DataDictionary, FieldSpec, FieldType
from ..status import Channel
from ..yamlsafe import YList, YMap, load_yaml
from . import smstemplates
from .amountload import AmountReader, table_parameter
from .model import (
    CHANGE_KINDS,
    ChangeTemplates,
    Combinator,
    Condition,
    ExpectText,
    FieldCondition,
    Item,
    Parameter,
    ParamRef,
    RecordCondition,
    Rule,
    RuleTest,
    jsonable,
)

RULE_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,99}")
COND_ID = re.compile(r"[a-z][a-z0-9_]{0,40}")
TOP_KEYS = (
    "id",
    "item",
    "parameters",
    "match",
    "amount",
    "notify",
    "channels",
    "templates",
    "sms_templates",
    "audience",
    "schedule",
    "tests",
    "public_fields",
)
ITEM_KEYS = (
    "title",
    "domain",
    "department",
    "url",
    "publish",
    "disclosure",
    "document_no",
    "retention_days",
)
COMPARE_OPS = ("less_than", "at_most", "greater_than", "at_least")
FIELD_OPS = (
    "equals",
    "not_equals",
    "in",
    "not_in",
    *COMPARE_OPS,
    "between",
    "is_missing",
    "age_at_least",
    "age_below",
)
COMBINATORS = ("all", "any", "not")
LEAF_KEYS = ("id", "label", "field", "if_missing", *FIELD_OPS)
RECORD_KEYS = ("id", "label", "records", "where", "within_years", "if_missing")
IF_MISSING = ("review", "fail", "pass")
NOTIFY = ("resident", "household", "contact")
ORDERED = (FieldType.INT, FieldType.DECIMAL, FieldType.DATE)

_BAD = object()
NEVER_PUBLIC = ("id_number", "phone", "email")  # never on a public list, whatever a rule says
ON_EVERY_LIST = ("name", "township", "village", "household_size")  # columns of every list already
WARN_PUBLIC = {"address": "a home address on a notice board: make sure the policy requires it"}


def _show(value: Any) -> str:
    return repr(
        value.isoformat() if isinstance(value, date) else str(value) if isinstance(value, Decimal) else value
    )


class _Checker:
    def __init__(self, file: str, dictionary: DataDictionary) -> None:
        self.file = file
        self.d = dictionary
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self.params: dict[str, Parameter] = {}
        self.ids: dict[str, int] = {}
        self.auto = 0

    def bad(self, mark: tuple[int, int], message: str) -> None:
        self.problems.append(Problem(message, file=self.file, line=mark[0], column=mark[1]))

    def unknown_keys(self, node: YMap, allowed: tuple[str, ...], what: str) -> None:
        for key in node:
            if key not in allowed:
                self.bad(node.key_where(key), f"unknown key {key!r} in {what}{did_you_mean(key, allowed)}")

    # -- item, parameters -------------------------------------------------------------
    def item(self, node: Any, mark: tuple[int, int]) -> Item | None:
        if not isinstance(node, YMap):
            self.bad(mark, "item: must be a mapping with title, domain, department, url, publish, disclosure")
            return None
        self.unknown_keys(node, ITEM_KEYS, "item")
        for key in ("title", "domain"):
            if not node.get(key):
                self.bad(node.mark, f"item.{key} is required")
        domain = str(node.get("domain") or "")
        if domain and self.d.domains and domain not in self.d.domains:
            self.bad(
                node.where("domain"),
                f"unknown domain {domain!r}{did_you_mean(domain, self.d.domains)}; "
                f"declared in fields.yaml: {', '.join(self.d.domains)}",
            )
        disclosure = str(node.get("disclosure", "public"))
        if disclosure not in ("public", "restricted"):
            self.bad(node.where("disclosure"), f"disclosure must be public or restricted, not {disclosure!r}")
        start = until = None
        pub = node.get("publish")
        if pub is not None:
            if not isinstance(pub, YMap):
                self.bad(node.where("publish"), "publish must be {from: DATE, until: DATE}")
            else:
                self.unknown_keys(pub, ("from", "until"), "item.publish")
                start, until = pub.get("from"), pub.get("until")
                for key, val in (("from", start), ("until", until)):
                    if val is not None and not isinstance(val, date) or isinstance(val, datetime):
                        self.bad(pub.where(key), f"publish.{key} must be a date like 2026-03-01")
                if isinstance(start, date) and isinstance(until, date) and until < start:
                    self.bad(pub.where("until"), "publish.until is before publish.from")
        keep = node.get("retention_days")
        if keep is not None and (not isinstance(keep, int) or isinstance(keep, bool) or keep < 0):
            self.bad(
                node.where("retention_days"), "item.retention_days must be a whole number of days (0: keep)"
            )
            keep = None
        return Item(
            str(node.get("title") or ""),
            domain,
            str(node.get("department") or ""),
            str(node.get("url") or ""),
            start if isinstance(start, date) else None,
            until if isinstance(until, date) else None,
            disclosure,
            str(node.get("document_no") or ""),
            keep,
        )

    def parameters(self, node: Any, mark: tuple[int, int]) -> None:
        if node is None:
            return
        if not isinstance(node, YMap):
            self.bad(mark, "parameters: must be a mapping of name -> {unit, reference, values}")
            return
        for name, body in node.items():
            if not COND_ID.fullmatch(name):
                self.bad(
                    node.key_where(name), f"parameter name {name!r} must be lower-case letters, digits and _"
                )
            if not isinstance(body, YMap) or not isinstance(body.get("values"), YMap) or not body["values"]:
                self.bad(node.where(name), f"parameter {name!r} needs values: {{DATE: VALUE, ...}}")
                continue
            self.unknown_keys(body, ("unit", "reference", "values", "label"), f"parameter {name!r}")
            if any(isinstance(v, YList) for v in body["values"].values()):
                table = table_parameter(name, body, body["values"], self.bad)
                if table is not None:
                    self.params[name] = table
                continue
            values = []
            for since, value in body["values"].items():
                try:
                    day = date.fromisoformat(str(since))
                except ValueError:
                    self.bad(
                        body["values"].key_where(since),
                        f"{since!r} is not a date (values are keyed by the date they take effect)",
                    )
                    continue
                if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
                    self.bad(body["values"].where(since), f"parameter value {value!r} is not a number")
                    continue
                values.append((day, Decimal(value)))
            self.params[name] = Parameter(
                name, str(body.get("unit") or ""), str(body.get("reference") or ""), tuple(sorted(values))
            )

    # -- conditions -----------------------------------------------------------------
    def condition(self, node: Any, mark: tuple[int, int]) -> Condition | None:
        if not isinstance(node, YMap) or not node:
            self.bad(
                mark, "a condition must be a mapping: all/any/not, a field condition or a records condition"
            )
            return None
        for q in ("any", "none"):  # any:/none: holding `records:` is a related-records condition
            if isinstance(node.get(q), YMap) and "records" in node[q]:
                self.unknown_keys(node, (q, "id", "label", "if_missing"), "records condition")
                return self.record_query(q, node)
        combos = [k for k in node if k in COMBINATORS]
        if combos:
            op = combos[0]
            self.unknown_keys(node, (op, "id", "label"), f"'{op}' condition")
            body = node[op]
            if op == "not":
                child = self.condition(body, node.where(op))
                return Combinator("not", (child,), node.mark) if child else None
            if not isinstance(body, YList) or not body:
                self.bad(node.where(op), f"'{op}' needs a non-empty list of conditions")
                return None
            children = [self.condition(c, body.where(i)) for i, c in enumerate(body)]
            kept = tuple(c for c in children if c is not None)
            return Combinator(op, kept, node.mark) if len(kept) == len(children) else None
        return self.field_condition(node)

    def _ident(self, node: YMap, default_label: str) -> tuple[str, str]:
        self.auto += 1
        cid = node.get("id")
        if cid is None:
            cid = f"c{self.auto}"
        elif not isinstance(cid, str) or not COND_ID.fullmatch(cid):
            self.bad(node.where("id"), f"condition id {cid!r} must be lower-case letters, digits and _")
            cid = f"c{self.auto}"
        if cid in self.ids:
            self.bad(node.where("id"), f"duplicate condition id {cid!r} (first on line {self.ids[cid]})")
        self.ids[cid] = node.where("id")[0]
        return cid, str(node.get("label") or default_label)

    def _if_missing(self, node: YMap) -> str:
        value = str(node.get("if_missing", "review"))
        if value not in IF_MISSING:
            self.bad(
                node.where("if_missing"),
                f"if_missing must be review, fail or pass{did_you_mean(value, IF_MISSING)}",
            )
        return value

    def field_condition(self, node: YMap) -> FieldCondition | None:
        name = node.get("field")
        ops = [k for k in node if k in FIELD_OPS]
        for key in node:
            if key not in LEAF_KEYS:
                self.bad(
                    node.key_where(key),
                    f"unknown key {key!r} in condition{did_you_mean(key, LEAF_KEYS + COMBINATORS)}",
                )
        if not isinstance(name, str):
            self.bad(node.mark, "condition needs field: NAME (or all/any/not, or records:)")
            return None
        spec = self.d.field(name)
        if spec is None:
            self.bad(node.where("field"), f"unknown field {name!r}{did_you_mean(name, self.d.all_fields())}")
            return None
        if len(ops) != 1:
            self.bad(
                node.mark,
                f"condition on {name!r} needs exactly one operator: {', '.join(FIELD_OPS)}"
                if not ops
                else f"condition on {name!r} has several operators: {', '.join(ops)}",
            )
            return None
        op = ops[0]
        cid, label = self._ident(node, f"{spec.label} {op}")
        value = self.operand(spec, op, node[op], node.where(op))
        if value is _BAD:
            return None
        return FieldCondition(cid, label, name, op, value, self._if_missing(node), node.mark)

    def operand(self, spec: FieldSpec, op: str, raw: Any, mark: tuple[int, int]) -> Any:
        if op == "is_missing":
            if not isinstance(raw, bool):
                self.bad(mark, "is_missing takes true or false")
                return _BAD
            return raw
        if op in ("age_at_least", "age_below"):
            if spec.type is not FieldType.DATE:
                self.bad(mark, f"{op} needs a date field; {spec.name!r} is {spec.type.value}")
                return _BAD
            if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
                self.bad(mark, f"{op} takes a whole number of years")
                return _BAD
            return raw
        if op in ("in", "not_in"):
            if not isinstance(raw, YList) or not raw:
                self.bad(mark, f"{op} takes a non-empty list of values")
                return _BAD
            vals = [self.literal(spec, v, raw.where(i), allow_param=False) for i, v in enumerate(raw)]
            return _BAD if _BAD in vals else tuple(vals)
        if op == "between":
            if not isinstance(raw, YList) or len(raw) != 2:
                self.bad(mark, "between takes [low, high]")
                return _BAD
            if spec.type not in ORDERED:
                self.bad(mark, f"between needs a number or date field; {spec.name!r} is {spec.type.value}")
                return _BAD
            vals = [self.literal(spec, v, raw.where(i), allow_param=True) for i, v in enumerate(raw)]
            return _BAD if _BAD in vals else tuple(vals)
        if op in COMPARE_OPS and spec.type not in ORDERED:
            self.bad(mark, f"{op} needs a number or date field; {spec.name!r} is {spec.type.value}")
            return _BAD
        return self.literal(spec, raw, mark, allow_param=op in COMPARE_OPS)

    def literal(self, spec: FieldSpec, raw: Any, mark: tuple[int, int], *, allow_param: bool) -> Any:
        if isinstance(raw, YMap) and "param" in raw:
            if not allow_param or spec.type not in (FieldType.INT, FieldType.DECIMAL):
                self.bad(
                    mark,
                    "a parameter can only be compared with a number field; "
                    f"{spec.name!r} is {spec.type.value}",
                )
                return _BAD
            self.unknown_keys(raw, ("param", "times"), "parameter reference")
            pname = str(raw["param"])
            if pname not in self.params:
                self.bad(raw.where("param"), f"unknown parameter {pname!r}{did_you_mean(pname, self.params)}")
                return _BAD
            if self.params[pname].tables:
                self.bad(
                    raw.where("param"), f"parameter {pname!r} holds band tables; conditions compare numbers"
                )
                return _BAD
            times = raw.get("times", 1)
            if isinstance(times, bool) or not isinstance(times, (int, Decimal)):
                self.bad(raw.where("times"), "times must be a number")
                return _BAD
            return ParamRef(pname, Decimal(times))
        t = spec.type
        ok = {
            FieldType.INT: lambda v: isinstance(v, int) and not isinstance(v, bool),
            FieldType.DECIMAL: lambda v: isinstance(v, (int, Decimal)) and not isinstance(v, bool),
            FieldType.DATE: lambda v: isinstance(v, date) and not isinstance(v, datetime),
            FieldType.TEXT: lambda v: isinstance(v, (str, int)) and not isinstance(v, bool),
        }
        if t in ok:
            if not ok[t](raw):
                kind = {
                    "int": "a whole number",
                    "decimal": "a number",
                    "date": "a date like 2026-03-01",
                    "text": "text",
                }[t.value]
                self.bad(mark, f"{spec.name!r} is a {t.value} field; {_show(raw)} is not {kind}")
                return _BAD
            return str(raw) if t is FieldType.TEXT else raw
        try:
            return spec.parse(raw)  # enum spellings and bool words
        except ValueError:
            if t is FieldType.ENUM:
                self.bad(
                    mark,
                    f"{_show(raw)} is not a value of {spec.name!r}{did_you_mean(str(raw), spec.lookup)}; "
                    f"values: {', '.join(spec.values)}",
                )
            else:
                self.bad(mark, f"{spec.name!r} is a yes/no field; {_show(raw)} is not true/false")
            return _BAD

    def record_query(self, quantifier: str, outer: YMap) -> RecordCondition | None:
        body = outer[quantifier]
        self.unknown_keys(body, ("records", "where", "within_years"), f"'{quantifier}' records condition")
        kind = str(body.get("records"))
        spec = self.d.records.get(kind)
        if spec is None:
            self.bad(
                body.where("records"), f"unknown record kind {kind!r}{did_you_mean(kind, self.d.records)}"
            )
            return None
        where: list[tuple[str, Any]] = []
        raw_where = body.get("where") or YMap()
        if not isinstance(raw_where, YMap):
            self.bad(body.where("where"), "where: must be a mapping of field: value")
            return None
        for fname, val in raw_where.items():
            fspec = spec.fields.get(fname)
            if fspec is None:
                self.bad(
                    raw_where.key_where(fname),
                    f"{kind!r} has no field {fname!r}{did_you_mean(fname, spec.fields)}",
                )
                continue
            lit = self.literal(fspec, val, raw_where.where(fname), allow_param=False)
            if lit is not _BAD:
                where.append((fname, jsonable(lit)))
        years = body.get("within_years")
        if years is not None:
            if isinstance(years, bool) or not isinstance(years, int) or years < 1:
                self.bad(body.where("within_years"), "within_years takes a whole number of years (1 or more)")
                years = None
            elif spec.date_field is None:
                self.bad(
                    body.where("within_years"),
                    f"record kind {kind!r} has no date field (set date: in fields.yaml)",
                )
        cid, label = self._ident(outer, f"{spec.label} {quantifier}")
        return RecordCondition(
            cid, label, quantifier, kind, tuple(where), years, outer.mark, self._if_missing(outer)
        )

    # -- public list --------------------------------------------------------------------
    def public_fields(self, node: Any, mark: tuple[int, int]) -> tuple[str, ...]:
        """The fields printed on the rule's 公示 list: known fields, never an ID number, phone or
        e-mail (refused), an address only with a warning."""
        if node is None:
            return ()
        if not isinstance(node, YList):
            self.bad(mark, "public_fields: must be a list of field names, such as [farmland_mu]")
            return ()
        out: list[str] = []
        for i, raw in enumerate(node):
            name, where = str(raw), node.where(i)
            if name in NEVER_PUBLIC:
                self.bad(where, f"{name!r} is personal data and is never printed on a public list")
            elif name in ON_EVERY_LIST:
                self.bad(where, f"{name!r} is on every public list already (the name masked)")
            elif self.d.field(name) is None:
                self.bad(where, f"unknown field {name!r}{did_you_mean(name, self.d.all_fields())}")
            elif name in out:
                self.bad(where, f"field {name!r} is listed twice")
            else:
                out.append(name)
                if name in WARN_PUBLIC:
                    self.warnings.append(
                        Problem(f"warning: public field {name!r}: {WARN_PUBLIC[name]}", self.file, *where)
                    )
        return tuple(out)

    # -- channels, templates, schedule, tests ---------------------------------------
    def channels(self, node: Any, mark: tuple[int, int]) -> list[Channel]:
        if not isinstance(node, YList) or not node:
            self.bad(mark, "channels: must be a non-empty list such as [sms, email, letter]")
            return []
        out: list[Channel] = []
        for i, raw in enumerate(node):
            try:
                ch = Channel(str(raw))
            except ValueError:
                self.bad(
                    node.where(i),
                    f"unknown channel {raw!r}{did_you_mean(str(raw), [c.value for c in Channel])}",
                )
                continue
            if ch in out:
                self.bad(node.where(i), f"channel {ch} is listed twice")
            out.append(ch)
        return out

    def schedule(self, node: Any, mark: tuple[int, int]) -> dict[str, Any]:
        if node is None:
            return {}
        if not isinstance(node, YMap) or len(node) != 1 or next(iter(node)) not in ("once", "cron"):
            self.bad(mark, 'schedule: must be {once: 2026-03-02T09:00} or {cron: "0 9 5 * *"}')
            return {}
        kind, value = next(iter(node.items()))
        if kind == "once":
            if isinstance(value, date) and not isinstance(value, datetime):
                value = datetime(value.year, value.month, value.day, 9, 0)
            if not isinstance(value, datetime):
                self.bad(node.where(kind), "once: takes a date and time like 2026-03-02T09:00")
                return {}
            return {"once": value}
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(str(value))
        except ValueError as exc:
            self.bad(node.where(kind), f"invalid cron expression {value!r}: {exc}")
            return {}
        return {"cron": str(value)}

    def tests(self, node: Any, mark: tuple[int, int]) -> list[RuleTest]:
        if node is None:
            return []
        if not isinstance(node, YList):
            self.bad(mark, "tests: must be a list")
            return []
        out = []
        for i, t in enumerate(node):
            if not isinstance(t, YMap):
                self.bad(node.where(i), "each test is a mapping with name, on, resident, expect")
                continue
            allowed = ("name", "on", "resident", "expect", "amount", "expect_text", *self.d.records)
            self.unknown_keys(t, allowed, "test")
            expect = str(t.get("expect"))
            if expect not in ("match", "no_match", "review"):
                self.bad(
                    t.where("expect"),
                    "expect must be match, no_match or review"
                    + did_you_mean(expect, ["match", "no_match", "review"]),
                )
            on = t.get("on")
            if not isinstance(on, date) or isinstance(on, datetime):
                self.bad(t.where("on"), "on: takes the date the test evaluates the rule for")
                continue
            resident = t.get("resident") or YMap()
            if not isinstance(resident, YMap):
                self.bad(t.where("resident"), "resident: must be a mapping of field: value")
                continue
            values = self.typed_values(resident, self.d.all_fields(), "the register")
            recs: dict[str, list[dict[str, Any]]] = {}
            for kind in self.d.records:
                rows = t.get(kind)
                if rows is None:
                    continue
                if not isinstance(rows, YList):
                    self.bad(t.where(kind), f"{kind}: must be a list of records")
                    continue
                parsed = []
                for j, row in enumerate(rows):
                    if not isinstance(row, YMap):
                        self.bad(rows.where(j), "each record is a mapping of field: value")
                        continue
                    parsed.append(self.typed_values(row, self.d.records[kind].fields, repr(kind)))
                recs[kind] = parsed
            amount = t.get("amount")
            if amount is not None and (isinstance(amount, bool) or not isinstance(amount, (int, Decimal))):
                self.bad(
                    t.where("amount"), f"amount: takes the expected amount in yuan (or null), not {amount!r}"
                )
            texts = self.expect_text(t.get("expect_text"), t.where("expect_text"))
            out.append(
                RuleTest(
                    str(t.get("name") or f"test {i + 1}"),
                    on,
                    values,
                    recs,
                    expect,
                    t.mark,
                    Decimal(amount) if isinstance(amount, (int, Decimal)) else None,
                    "amount" in t,
                    texts,
                )
            )
        return out

    def expect_text(self, node: Any, mark: tuple[int, int]) -> dict[Channel, ExpectText]:
        """`expect_text: {sms: "exact text", email: {contains: [..]}}`."""
        if node is None:
            return {}
        if not isinstance(node, YMap):
            self.bad(
                mark, 'expect_text: maps channels to the text, e.g. {sms: "…"} or {sms: {contains: [..]}}'
            )
            return {}
        out: dict[Channel, ExpectText] = {}
        for key, want in node.items():
            try:
                ch = Channel(key)
            except ValueError:
                self.bad(
                    node.key_where(key),
                    f"unknown channel {key!r}{did_you_mean(key, [c.value for c in Channel])}",
                )
                continue
            if isinstance(want, str):
                out[ch] = ExpectText(want, ())
            elif (
                isinstance(want, YMap)
                and set(want) == {"contains"}
                and isinstance(want["contains"], YList)
                and all(isinstance(x, str) for x in want["contains"])
            ):
                out[ch] = ExpectText(None, tuple(want["contains"]))
            else:
                self.bad(
                    node.where(key), f"expect_text.{key} takes the exact text or {{contains: [text, ...]}}"
                )
        return out

    def notify(self, node: Any, mark: tuple[int, int]) -> str:
        value = "resident" if node is None else str(node)
        if value not in NOTIFY:
            self.bad(mark, f"notify must be resident, household or contact{did_you_mean(value, NOTIFY)}")
            return "resident"
        if value == "household" and self.d.field("household_id") is None:
            self.bad(
                mark,
                "notify: household needs a household_id field in fields.yaml "
                "(e.g. household_id: {type: text, label: 户编号, columns: [户编号, 户号]})",
            )
        return value

    def typed_values(self, node: YMap, specs: dict[str, FieldSpec], owner: str) -> dict[str, Any]:
        """A test resident's or record's `field: value` pairs, read as the importer reads cells."""
        out: dict[str, Any] = {}
        for fname, raw in node.items():
            spec = specs.get(fname)
            if spec is None:
                self.bad(node.key_where(fname), f"{owner} has no field {fname!r}{did_you_mean(fname, specs)}")
                continue
            try:
                out[fname] = (
                    None if raw is None else spec.parse(str(raw) if isinstance(raw, Decimal) else raw)
                )
            except ValueError as exc:
                self.bad(node.where(fname), f"{fname}: {exc}")
        return out


def _outside_templates(name: Any, templates_dir: Path) -> str | None:
    """Why a template name could reach outside the templates folder (None when it cannot).

    Rule files come from staff, templates are vetted text: a name like ../../etc/passwd or a
    symlink out of the folder would render (and send) any file the process can read."""
    if not isinstance(name, str) or not name.strip():
        return "is not a file name"
    if "\x00" in name or "\\" in name:
        return "is not a plain file name"
    pure = PurePosixPath(name)
    if pure.is_absolute() or PureWindowsPath(name).drive:
        return "is an absolute path"
    if ".." in pure.parts:
        return "goes up with '..'"
    if not (templates_dir / name).resolve().is_relative_to(templates_dir.resolve()):
        return "leads out of the templates folder through a symbolic link"
    return None


_Templates = tuple[dict[Channel, str], dict[Channel, str]]  # names and sources by channel


def _template(c: _Checker, node: YMap, key: Any, templates_dir: Path) -> tuple[str, str] | None:
    """One template name of a rule: inside the templates folder and there; (name, source)."""
    name = node[key]
    outside = _outside_templates(name, templates_dir)
    if outside:
        c.bad(
            node.where(key), f"template {name!r} {outside}: a rule may only use files inside {templates_dir}"
        )
        return None
    tpath = templates_dir / name
    if not tpath.is_file():
        c.bad(
            node.where(key),
            f"template {name!r} not found in {templates_dir}"
            f"{did_you_mean(str(name), [p.name for p in templates_dir.glob('*.j2')])}",
        )
        return None
    return str(name), tpath.read_text(encoding="utf-8")


def _templates(
    c: _Checker, doc: YMap, channels: list[Channel], templates_dir: Path, *, changes: bool
) -> dict[str, _Templates]:
    """`templates:` by kind of notice: {"joined": ...} for a plain rule (its only kind); a change
    rule maps each channel to {joined: FILE, left: FILE, changed: FILE}."""
    raw_t = doc.get("templates")
    kinds = CHANGE_KINDS if changes else ("joined",)
    out: dict[str, _Templates] = {k: ({}, {}) for k in kinds}
    if "templates" in doc and not isinstance(raw_t, YMap):
        c.bad(doc.where("templates"), "templates: must map each channel to a template file")
        return out
    if not isinstance(raw_t, YMap):
        return out
    for ch in channels:
        if ch.value not in raw_t:
            c.bad(doc.where("templates"), f"no template for channel {ch.value}")
    for key in raw_t:
        try:
            ch = Channel(key)
        except ValueError:
            c.bad(
                raw_t.key_where(key),
                f"unknown channel {key!r}{did_you_mean(key, [x.value for x in Channel])}",
            )
            continue
        if not changes:
            found = _template(c, raw_t, key, templates_dir)
            if found:
                out["joined"][0][ch], out["joined"][1][ch] = found
            continue
        per = raw_t[key]
        if not isinstance(per, YMap):
            c.bad(
                raw_t.where(key),
                f"with audience: changes, templates.{key} maps joined, left and changed to template files",
            )
            continue
        c.unknown_keys(per, CHANGE_KINDS, f"templates.{key}")
        for kind in kinds:
            if kind not in per:
                c.bad(raw_t.where(key), f"templates.{key} has no {kind} template (audience: changes)")
                continue
            found = _template(c, per, kind, templates_dir)
            if found:
                out[kind][0][ch], out[kind][1][ch] = found
    return out


def read_rule(path: Path, dictionary: DataDictionary, templates_dir: Path) -> Rule:
    """Load and check one rule file; RuleError lists every located problem in it."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise RuleError(
            f"{file}: not UTF-8 text", [Problem("not UTF-8 text", file=file, line=1, column=1)]
        ) from None
    try:
        doc = load_yaml(text, file)
    except InputError as exc:
        raise RuleError(exc.message.splitlines()[0], exc.problems) from None
    c = _Checker(file, dictionary)
    if not isinstance(doc, YMap):
        raise RuleError(
            f"{file}: not a rule",
            [
                Problem(
                    "a rule file is a mapping with id, item, match, channels, templates",
                    file=file,
                    line=1,
                    column=1,
                )
            ],
        )
    c.unknown_keys(doc, TOP_KEYS, "rule")
    for key in ("id", "item", "match", "channels", "templates"):
        if key not in doc:
            c.bad((1, 1), f"missing required key {key!r}")
    rid = str(doc.get("id", ""))
    if "id" in doc and not RULE_ID.fullmatch(rid):
        c.bad(doc.where("id"), f"rule id {rid!r} must be lower-case letters, digits and -")
    item = c.item(doc.get("item"), doc.where("item"))
    c.parameters(doc.get("parameters"), doc.where("parameters"))
    match = c.condition(doc.get("match"), doc.where("match")) if "match" in doc else None
    amount = (
        AmountReader(dictionary, c.params, c.bad).node(doc["amount"], doc.where("amount"))
        if "amount" in doc
        else None
    )
    notify = c.notify(doc.get("notify"), doc.where("notify"))
    channels = c.channels(doc.get("channels"), doc.where("channels")) if "channels" in doc else []
    audience = str(doc.get("audience", "all"))
    if audience not in ("all", "changes"):
        c.bad(
            doc.where("audience"),
            f"audience must be all or changes{did_you_mean(audience, ['all', 'changes'])}",
        )
    by_kind = _templates(c, doc, channels, templates_dir, changes=audience == "changes")
    templates, sources = by_kind.get("joined", ({}, {}))
    schedule = c.schedule(doc.get("schedule"), doc.where("schedule"))
    tests = c.tests(doc.get("tests"), doc.where("tests"))
    registered = (
        smstemplates.parse(doc["sms_templates"], doc.where("sms_templates"), c.bad)
        if "sms_templates" in doc
        else {}
    )
    public = c.public_fields(doc.get("public_fields"), doc.where("public_fields"))
    if audience == "changes" and registered:
        c.bad(
            doc.where("sms_templates"),
            "sms_templates cannot be used with audience: changes yet (one registered template per "
            "kind of change is not supported); send change notices through a provider without them",
        )
    if c.problems or item is None or match is None:  # its warnings are said with its problems
        raise RuleError(f"{file}: {len(c.problems)} problem(s)", c.problems + c.warnings)
    document = jsonable(doc)
    rule = Rule(
        rid,
        file,
        item,
        c.params,
        match,
        channels,
        templates,
        schedule,
        tests,
        document,
        template_sources=sources,
        template_files={ch: str(templates_dir / n) for ch, n in templates.items()},
        sms_templates=registered,
        audience=audience,
        change_templates={
            kind: ChangeTemplates(names, srcs, {ch: str(templates_dir / n) for ch, n in names.items()})
            for kind, (names, srcs) in by_kind.items()
        }
        if audience == "changes"
        else {},
        public_fields=public,
        warnings=tuple(c.warnings),
        amount=amount,
        notify=notify,
    )
    rule.version = rule_version(rule, dictionary)
    return rule


def rule_version(rule: Rule, dictionary: DataDictionary) -> str:
    """SHA-256 of the normalised rule, the data dictionary and the templates it uses."""
    body = canonical_json(
        {
            "rule": rule.document,
            "fields": dictionary.text,
            "templates": {ch.value: src for ch, src in sorted(rule.template_sources.items())},
            **(
                {
                    "change_templates": {
                        kind: {ch.value: src for ch, src in sorted(t.sources.items())}
                        for kind, t in sorted(rule.change_templates.items())
                    }
                }
                if rule.change_templates
                else {}
            ),
        }
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def rule_files(rules_dir: Path) -> list[Path]:
    return sorted(
        p for p in rules_dir.glob("*.y*ml") if p.name != "fields.yaml" and p.suffix in (".yaml", ".yml")
    )


@dataclass(frozen=True)
class DuplicateRuleId(Problem):
    """A rule id defined in more than one file: none of them is loaded (which is meant is not
    ours to guess), so every command refuses the id until one file is renamed."""

    rule: str = ""


_ID_LINE = re.compile(r"^id\s*:", re.MULTILINE)


def _id_line(file: str) -> int:
    try:
        m = _ID_LINE.search(Path(file).read_text(encoding="utf-8"))
    except (OSError, UnicodeError):
        return 1
    return m.string.count("\n", 0, m.start()) + 1 if m else 1


def load_rules(
    paths: list[Path], dictionary: DataDictionary, templates_dir: Path
) -> tuple[dict[str, Rule], list[Problem]]:
    """Every rule in `paths`; problems from all files together (one bad file hides nothing, and an
    unreadable file or template is a problem of that file, not the end of the command)."""
    found: dict[str, list[Rule]] = {}
    problems: list[Problem] = []
    for path in paths:
        try:
            rule = read_rule(path, dictionary, templates_dir)
        except RuleError as exc:
            problems.extend(exc.problems or [Problem(exc.message, file=str(path))])
            continue
        except (OSError, UnicodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            problems.append(
                Problem(
                    f"cannot read {getattr(exc, 'filename', None) or path}: {reason}",
                    file=str(path),
                    line=1,
                    column=1,
                )
            )
            continue
        found.setdefault(rule.id, []).append(rule)
    rules: dict[str, Rule] = {}
    for rid, same in found.items():
        if len(same) == 1:
            rules[rid] = same[0]
            continue
        files = [r.file for r in same]
        for r in same:
            others = ", ".join(f for f in files if f != r.file)
            problems.append(
                DuplicateRuleId(
                    f"rule id {rid!r} is also defined in {others}; rule ids must be unique "
                    "(rename one): neither file is used",
                    file=r.file,
                    line=_id_line(r.file),
                    column=1,
                    rule=rid,
                )
            )
    return rules, problems


def find_rule(rule_id: str, rules_dir: Path, dictionary: DataDictionary, templates_dir: Path) -> Rule:
    from ..errors import NotFound

    paths = rule_files(rules_dir)
    rules, problems = load_rules(paths, dictionary, templates_dir)
    if rule_id in rules:
        return rules[rule_id]
    dup = [p for p in problems if isinstance(p, DuplicateRuleId) and p.rule == rule_id]
    if dup:
        raise RuleError(
            f"rule {rule_id!r} is defined in {len(dup)} files: {', '.join(str(p.file) for p in dup)}",
            list[Problem](dup),
        )
    bad = [p for p in problems if p.file and Path(p.file).stem == rule_id]
    if bad:
        raise RuleError(f"rule {rule_id!r} has errors (run `notifier rules check`)", bad)
    raise NotFound(f"no rule {rule_id!r} in {rules_dir}{did_you_mean(rule_id, rules)}")
