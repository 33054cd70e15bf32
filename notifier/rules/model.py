"""What a loaded rule file is: item, dated parameters, condition tree, amount, channels, schedule, tests."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Union

from ..status import Channel

if TYPE_CHECKING:
    from ..errors import Problem
    from .smstemplates import RegisteredTemplate

Mark = tuple[int, int]


@dataclass(frozen=True)
class Item:
    title: str
    domain: str
    department: str
    url: str
    publish_from: date | None
    publish_until: date | None
    disclosure: str  # public | restricted
    document_no: str = ""  # 文号 of the decision behind the notice (printed on letters), if any
    retention_days: int | None = None  # overrides [retention] messages_days for this item's runs

    def published_on(self, day: date) -> bool:
        return (self.publish_from is None or day >= self.publish_from) and (
            self.publish_until is None or day <= self.publish_until
        )


@dataclass(frozen=True)
class Band:
    """One row of a band table: `low`..`high` inclusive (None: open end) pays `fen`."""

    low: Decimal | None
    high: Decimal | None
    fen: int


@dataclass(frozen=True)
class Parameter:
    name: str
    unit: str
    reference: str
    values: tuple[tuple[date, Decimal], ...]  # sorted by date
    # A band parameter: dated band tables instead of dated numbers (values is then empty).
    tables: tuple[tuple[date, tuple[Band, ...]], ...] = ()

    def value_on(self, day: date) -> Decimal | None:
        found = None
        for since, value in self.values:
            if since <= day:
                found = value
        return found

    def table_on(self, day: date) -> tuple[Band, ...] | None:
        found = None
        for since, table in self.tables:
            if since <= day:
                found = table
        return found


@dataclass(frozen=True)
class ParamRef:
    name: str
    times: Decimal = Decimal(1)


@dataclass(frozen=True)
class FieldCondition:
    id: str
    label: str
    field: str
    op: str
    value: Any  # literal, ParamRef, list of them (in / between), bool (is_missing), int (ages)
    if_missing: str  # review | fail | pass
    mark: Mark


@dataclass(frozen=True)
class RecordCondition:
    id: str
    label: str
    quantifier: str  # any | none
    kind: str
    where: tuple[tuple[str, Any], ...]
    within_years: int | None
    mark: Mark
    if_missing: str = "review"


@dataclass(frozen=True)
class Combinator:
    op: str  # all | any | not
    children: tuple["Condition", ...]
    mark: Mark


Condition = Union[FieldCondition, RecordCondition, Combinator]
Leaf = Union[FieldCondition, RecordCondition]


def leaves(cond: Condition) -> list[Leaf]:
    if isinstance(cond, Combinator):
        return [leaf for child in cond.children for leaf in leaves(child)]
    return [cond]


# -- amounts (rules/amounts.py compiles them, in integer fen) ----------------------------
@dataclass(frozen=True)
class Fixed:
    """A number of yuan, or a parameter's value in force (`param`)."""

    fen: int | None
    param: str | None
    mark: Mark


@dataclass(frozen=True)
class FieldAmount:
    """A resident's own decimal field, in yuan (e.g. the 低保 monthly amount already decided)."""

    field: str
    mark: Mark


@dataclass(frozen=True)
class Bands:
    """The band `field` (an age on the run date, for a date field) falls in; None outside every band
    pays nothing. `table` is written in the rule, or `param` holds dated tables."""

    field: str
    age: bool
    table: tuple[Band, ...]
    param: str | None
    mark: Mark


@dataclass(frozen=True)
class Per:
    """A rate parameter (yuan per unit, dated) times a quantity field, rounded half-up to the fen."""

    param: str
    times_field: str
    mark: Mark


@dataclass(frozen=True)
class Sum:
    parts: tuple["Amount", ...]
    mark: Mark


@dataclass(frozen=True)
class Amount:
    """One amount node with its optional floor (`min`) and cap (`max`)."""

    body: Union[Fixed, FieldAmount, Bands, Per, Sum]
    label: str
    at_least: Fixed | None
    at_most: Fixed | None
    mark: Mark


def amount_fields(node: Amount) -> list[str]:
    """The resident fields an amount reads: any of them missing leaves the amount (and the rule) open."""
    b = node.body
    if isinstance(b, Sum):
        return list(dict.fromkeys(f for part in b.parts for f in amount_fields(part)))
    if isinstance(b, (FieldAmount, Bands)):
        return [b.field]
    if isinstance(b, Per):
        return [b.times_field]
    return []


@dataclass(frozen=True)
class ExpectText:
    """A test's expected text of one channel: exactly `equals`, or containing each of `contains`."""

    equals: str | None
    contains: tuple[str, ...]


@dataclass(frozen=True)
class RuleTest:
    name: str
    on: date
    resident: dict[str, Any]
    records: dict[str, list[dict[str, Any]]]
    expect: str  # match | no_match | review
    mark: Mark
    amount: Decimal | None = None
    expects_amount: bool = False  # `amount:` given (None then asserts no amount)
    expect_text: dict[Channel, ExpectText] = field(default_factory=dict)


CHANGE_KINDS = ("joined", "left", "changed")
"""Newly eligible, no longer eligible, amount changed: the notices of an `audience: changes` rule."""


@dataclass(frozen=True)
class ChangeTemplates:
    """One kind of change notice's template per channel: names, sources and files."""

    names: dict[Channel, str]
    sources: dict[Channel, str]
    files: dict[Channel, str]


@dataclass
class Rule:
    id: str
    file: str
    item: Item
    parameters: dict[str, Parameter]
    match: Condition
    channels: list[Channel]
    templates: dict[Channel, str]
    schedule: dict[str, Any]
    tests: list[RuleTest]
    document: dict[str, Any] = field(repr=False)  # the normalised file, JSON-ready
    version: str = ""
    template_sources: dict[Channel, str] = field(default_factory=dict, repr=False)
    template_files: dict[Channel, str] = field(default_factory=dict, repr=False)
    sms_templates: dict[str, RegisteredTemplate] = field(default_factory=dict)  # by provider kind
    amount: Amount | None = None
    notify: str = "resident"  # resident | household | contact (households.py)
    # Fields the rule names as public: printed on its 公示 list beside the masked name (disclosure/)
    public_fields: tuple[str, ...] = ()
    warnings: tuple[Problem, ...] = ()  # what `rules check` points out without refusing the file
    # `audience: changes` (runs/changes.py): notify only whose result changed since the last
    # completed run, each kind of change with its own templates; `templates` are then the joined ones.
    audience: str = "all"  # all | changes
    change_templates: dict[str, ChangeTemplates] = field(default_factory=dict, repr=False)  # by kind

    def for_change(self, kind: str) -> Rule:
        """This rule as it renders one kind of change notice: that kind's templates."""
        t = self.change_templates[kind]
        return replace(
            self, templates=dict(t.names), template_sources=dict(t.sources), template_files=dict(t.files)
        )

    def leaves(self) -> list[Leaf]:
        return leaves(self.match)

    def template_file(self, name: str | None) -> str | None:
        """The file behind a template name a render error reports (the name itself if none)."""
        return next(
            (
                self.template_files[ch]
                for ch, n in self.templates.items()
                if n == name and ch in self.template_files
            ),
            name,
        )


def jsonable(value: Any) -> Any:
    """The normalised form used for versions and snapshots."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value
