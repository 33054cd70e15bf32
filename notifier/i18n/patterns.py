"""Translations of service texts that carry values (importer problems, rule problems, preview
warnings), for the console pages that show them.

The services build English text with values in it (`unknown field 'incom' (did you mean
"income"?)`), as the CLI prints it, and give it no message id. So each such text has a message
id here with the values as placeholders (`unknown field %(field)s%(hint)s`): the text is read
back against the ids (`parse`), the catalog translates the id and the values found are put
back. Placeholders named in NESTED hold a message of their own (a did-you-mean hint, the reason
after a masked value), read back the same way unless quoted (`'grants'` is a value). A text no
id fits, or whose nested message is not known, is shown as it is: staff read the CLI's English
rather than half a translation. Errors raised with a message id (NotifierError.translatable)
need none of this: `i18n.error_text`. tests/test_i18n_patterns.py produces the texts by real
imports, rule checks and previews, so a new or reworded text fails there, not on the page.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from . import gettext

MESSAGES: tuple[str, ...] = (
    # rule files (rules/load.py)
    "unknown key %(key)s in %(what)s%(hint)s",
    "item: must be a mapping with title, domain, department, url, publish, disclosure",
    "item.%(key)s is required",
    "unknown domain %(domain)s%(hint)s; declared in fields.yaml: %(known)s",
    "disclosure must be public or restricted, not %(value)s",
    "publish must be {from: DATE, until: DATE}",
    "publish.%(key)s must be a date like 2026-03-01",
    "publish.until is before publish.from",
    "parameters: must be a mapping of name -> {unit, reference, values}",
    "parameter name %(name)s must be lower-case letters, digits and _",
    "parameter %(name)s needs values: {DATE: VALUE, ...}",
    "%(value)s is not a date (values are keyed by the date they take effect)",
    "parameter value %(value)s is not a number",
    "a condition must be a mapping: all/any/not, a field condition or a records condition",
    "'%(op)s' needs a non-empty list of conditions",
    "condition id %(id)s must be lower-case letters, digits and _",
    "duplicate condition id %(id)s (first on line %(line)s)",
    "if_missing must be review, fail or pass%(hint)s",
    "condition needs field: NAME (or all/any/not, or records:)",
    "unknown field %(field)s%(hint)s",
    "condition on %(field)s needs exactly one operator: %(ops)s",
    "condition on %(field)s has several operators: %(ops)s",
    "is_missing takes true or false",
    "%(op)s needs a date field; %(field)s is %(type)s",
    "%(op)s takes a whole number of years",
    "%(op)s takes a non-empty list of values",
    "between takes [low, high]",
    "%(op)s needs a number or date field; %(field)s is %(type)s",
    "a parameter can only be compared with a number field; %(field)s is %(type)s",
    "unknown parameter %(name)s%(hint)s",
    "times must be a number",
    "%(field)s is a yes/no field; %(value)s is not true/false",
    "%(field)s is a %(type)s field; %(value)s is not %(expected)s",
    "%(value)s is not a value of %(field)s%(hint)s; values: %(values)s",
    "unknown record kind %(kind)s%(hint)s",
    "where: must be a mapping of field: value",
    "within_years takes a whole number of years (1 or more)",
    "record kind %(kind)s has no date field (set date: in fields.yaml)",
    "channels: must be a non-empty list such as [sms, email, letter]",
    "unknown channel %(channel)s%(hint)s",
    "channel %(channel)s is listed twice",
    'schedule: must be {once: 2026-03-02T09:00} or {cron: "0 9 5 * *"}',
    "once: takes a date and time like 2026-03-02T09:00",
    "invalid cron expression %(value)s: %(error)s",
    "tests: must be a list",
    "each test is a mapping with name, on, resident, expect",
    "expect must be match, no_match or review%(hint)s",
    "on: takes the date the test evaluates the rule for",
    "resident: must be a mapping of field: value",
    "%(kind)s: must be a list of records",
    "each record is a mapping of field: value",
    "%(owner)s has no field %(field)s%(hint)s",
    "not UTF-8 text",
    "a rule file is a mapping with id, item, match, channels, templates",
    "missing required key %(key)s",
    "rule id %(id)s must be lower-case letters, digits and -",
    "templates: must map each channel to a template file",
    "no template for channel %(channel)s",
    "audience must be all or changes%(hint)s",
    "with audience: changes, templates.%(channel)s maps joined, left and changed to template files",
    "templates.%(channel)s has no %(kind)s template (audience: changes)",
    "sms_templates cannot be used with audience: changes yet (one registered template per kind "
    "of change is not supported); send change notices through a provider without them",
    "template %(name)s %(why)s: a rule may only use files inside %(folder)s",
    "template %(name)s not found in %(folder)s%(hint)s",
    "cannot read %(file)s: %(error)s",
    "rule id %(id)s is also defined in %(files)s; rule ids must be unique (rename one): neither file is used",
    # YAML (yamlsafe.py)
    "a number may have at most %(max)s digits, this one has %(n)s (quote it if it is text)",
    "a number's exponent must be between -%(max)s and %(max)s (quote it if it is text)",
    "a key must be a plain name",
    "duplicate key %(key)s (first given on line %(line)s)",
    "invalid YAML: %(error)s",
    # templates (rendering/templates.py), rule checks (rules/checking.py)
    "an e-mail template needs {%% block %(block)s %%}",
    "template syntax error: %(error)s",
    "%(name)s has no value for this resident (it would print as nothing or 'None'); "
    "write {{ %(name)s|default('…') }} or test it with {%% if %(name)s %%}",
    "%(name)s: cannot render",
    "for a matched resident who lacks data the rule does not require: %(problem)s",
    "test %(name)s: expected %(expect)s, got %(got)s (%(conditions)s)",
    # preview (preview.py, runs/create.py)
    "%(why)s: `runs create --on %(on)s` would be refused",
    "%(on)s is outside the publication window of %(rule)s (%(start)s to %(until)s)",
    "%(file)s:%(line)s: %(problem)s (%(n)s resident(s))",
    # cells of a roster, and values of test residents (residents/validate.py, fields.py)
    "not a valid phone number",
    "not a valid e-mail address",
    "is stored as a number, so Excel has rounded it: "
    "format the ID column as text and enter the numbers again",
    "an ID number has 17 digits and a check digit or X",
    "the birth date inside the ID number is not a real date",
    "the birth date inside the ID number is out of range",
    "the ID number's check digit is wrong",
    "%(value)s is not an accepted spelling: %(listed)s (built in, field %(field)s)",
    "%(value)s is not an accepted spelling: %(listed)s (from fields.yaml, field %(field)s)",
    "%(value)s is not a yes/no value (是/否, 有/无, √/×, true/false, 1/0, Y/N)",
    "%(value)s is not a whole number",
    "%(value)s is not a number",
    "%(value)s is not a date (use 2026-03-02)",
    "%(value)s is not a valid month",
    "%(value)s is not a valid date",
    "%(value)s gives only a year and month; %(label)s needs a full date such as %(example)s "
    "(a field may accept months: precision: month in fields.yaml)",
    # rows and columns of a roster (residents/importer.py, readers.py)
    "resident id is missing",
    "column is not in the data dictionary and was ignored",
    "no resident with this id has been imported",
    "resident %(id)s has left (%(as)s); the roster says 正常: run `notifier residents reactivate` if they "
    "are back in care",
    "the cell holds %(n)s characters; at most %(max)s are accepted",
    "%(value)s: %(reason)s; dropped, row imported",
    "the cell holds more than one number; the first usable one, %(phone)s, was used",
    "%(label)s %(date)s contradicts the birth date in the ID number; the cell's date was kept",
    "duplicate of row %(row)s",
    "ID number %(id)s is already resident %(resident)s's in the register: one person, one resident",
    "ID number %(id)s is already resident %(resident)s's (row %(row)s): one person, one resident",
    "a %(word)s row, not a resident: skipped",
    # a whole roster file (readers.py, textcodec.py, xlsxguard.py), its path taken off
    "no resident id column (a header such as 居民编号 or resident_id is required "
    "in one of the first rows; looked at rows 1-10)",
    "columns %(a)s and %(b)s both hold %(label)s (%(field)s)",
    "the file is empty (expected a header row)",
    "sheet %(sheet)s is empty (expected a header row)",
    "not a readable XLSX workbook (%(detail)s)",
    "line %(line)s: not readable as CSV (%(detail)s); cells are limited to 10,000 characters",
    "not UTF-8 or GBK text (%(detail)s); it may be Big5 or another encoding: "
    "save it as UTF-8 (CSV UTF-8 in Excel) or as XLSX and import again",
    "refused, part %(part)s would expand to %(size)s bytes (%(ratio)s times its compressed size); "
    "a real roster is far smaller: re-save the sheet with only the roster's rows and columns",
    "refused, the workbook would expand to %(size)s bytes (limit %(limit)s)",
    # last: a field or masked value and what is wrong with it (`110101********1234: <reason>`)
    "%(value)s: %(reason)s",
)
"""Message ids of service texts with values, most specific first (the first that fits wins)."""

NESTED_MESSAGES: tuple[str, ...] = (
    ' (did you mean "%(word)s"?)',
    # where an unknown key was found, or a field is missing
    "item",
    "item.publish",
    "parameter reference",
    "parameter %(name)s",
    "condition",
    "records condition",
    "'%(op)s' records condition",
    "'%(op)s' condition",
    "test",
    "rule",
    "templates.%(channel)s",
    "the register",
    # what a value should have been
    "a whole number",
    "a number",
    "a date like 2026-03-01",
    "text",
    # why a template name is refused
    "is not a file name",
    "is not a plain file name",
    "is an absolute path",
    "goes up with '..'",
    "leads out of the templates folder through a symbolic link",
    # rule results
    "match",
    "no_match",
    "review",
)
"""Message ids only ever found inside another message (in a placeholder named in NESTED)."""

NESTED = frozenset({"hint", "what", "owner", "expected", "why", "problem", "expect", "got", "reason"})
PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%")
SHAPES = {
    "hint": r'(?: \(did you mean "[^"]*"\?\))?',
    "line": r"\d+",
    "row": r"\d+",
    "date": r"\d{4}-\d{2}-\d{2}",
    **dict.fromkeys(("n", "max", "size", "ratio", "limit"), r"[\d,]+"),
    **dict.fromkeys(("detail", "listed"), r".*?"),
}
"""Placeholders that match a narrower (or, empty allowed, wider) text than any run of characters."""
VALUE = r"'[^']*'|\"[^\"]*\"|.+?"
"""Any other value: a repr as a whole when it can be (`template ' ' is not a file name`)."""
QUOTED = re.compile(r"'.*'|\".*\"", re.DOTALL)
"""A nested placeholder's text that is a value (a repr), not a message."""
LOCATION = re.compile(r"(?P<where>.+?:\d+(?::\d+)?): (?P<message>.+)", re.DOTALL)
"""A located problem as str(Problem) writes it (`file:line:column: message`)."""


@dataclass(frozen=True)
class Parsed:
    """A service text read back: its message id and the values in it (a nested message parsed)."""

    msgid: str
    values: Mapping[str, str | Parsed]

    def text(self, language: str) -> str:
        translated = gettext(self.msgid, language)
        if not PLACEHOLDER.search(self.msgid):
            return translated
        return translated % {k: v if isinstance(v, str) else v.text(language) for k, v in self.values.items()}

    def msgids(self) -> set[str]:
        """The message ids used, this one's and the nested ones'."""
        return {self.msgid}.union(*(v.msgids() for v in self.values.values() if isinstance(v, Parsed)))


def translate(text: str, language: str) -> str:
    """`text` (a service's English message, or a located problem) in `language`; unchanged when
    it is not known."""
    m = LOCATION.fullmatch(text)
    if m and (inner := parse(m["message"])) is not None:
        return f"{m['where']}: {inner.text(language)}"
    found = parse(text)
    return text if found is None else found.text(language)


def parse(text: str, nested: bool = False) -> Parsed | None:
    """`text` as the first message id it fits whose nested messages are known too; None if none."""
    top, inner = _patterns()
    for msgid, pattern in inner + top if nested else top:
        m = pattern.fullmatch(text)
        if m is None:
            continue
        values: dict[str, str | Parsed] = {}
        for name, value in m.groupdict().items():
            nested_message = name in NESTED and value and not QUOTED.fullmatch(value)
            found = parse(value, nested=True) if nested_message else value
            if found is None:
                break
            values[name] = found
        else:
            return Parsed(msgid, values)
    return None


@lru_cache(maxsize=1)
def _patterns() -> tuple[list[tuple[str, re.Pattern[str]]], list[tuple[str, re.Pattern[str]]]]:
    return [(m, _pattern(m)) for m in MESSAGES], [(m, _pattern(m)) for m in NESTED_MESSAGES]


def _pattern(msgid: str) -> re.Pattern[str]:
    out, seen, at = [], set(), 0
    for m in PLACEHOLDER.finditer(msgid):
        out.append(re.escape(msgid[at : m.start()]))
        name = m.group(1)
        if name is None:
            out.append("%")
        elif name in seen:
            out.append(f"(?P={name})")
        else:
            seen.add(name)
            out.append(f"(?P<{name}>{SHAPES.get(name, '.*?' if name in NESTED else VALUE)})")
        at = m.end()
    out.append(re.escape(msgid[at:]))
    return re.compile("".join(out), re.DOTALL)
