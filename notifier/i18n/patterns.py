"""Translations of service messages that carry values (rule problems, preview warnings).

The services build English text with values in it (`unknown field 'incom' (did you mean
"income"?)`), as the CLI prints it. Rather than a second set of messages, each such text has a
message id here with the values as placeholders (`unknown field %(field)s%(hint)s`): the text is
matched against the ids, the catalog translates the id, and the values found are put back.
Placeholders named in NESTED hold text of their own (a did-you-mean hint, what a key was found
in) and are translated the same way. A text no id matches is shown as it is: staff still read
the CLI's English rather than nothing.
"""

from __future__ import annotations

import re
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
    "template %(name)s %(why)s: a rule may only use files inside %(folder)s",
    "template %(name)s not found in %(folder)s%(hint)s",
    "cannot read %(file)s: %(reason)s",
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
    # preview, explain, finding a rule (preview.py, runs/create.py, rules/load.py)
    "%(why)s: `runs create --on %(on)s` would be refused",
    "%(on)s is outside the publication window of %(rule)s (%(start)s to %(until)s)",
    "%(file)s:%(line)s: %(problem)s (%(n)s resident(s))",
    "no resident %(id)s in the register",
    "no rule %(id)s in %(folder)s%(hint)s",
    "rule %(id)s has errors (run `notifier rules check`)",
    "rule %(id)s is defined in %(n)s files: %(files)s",
    # values read from cells and test residents (fields.py), alone or after "field: "
    "%(value)s is not an accepted spelling: %(spellings)s",
    "%(value)s is not a yes/no value (是/否, 有/无, √/×, true/false, 1/0, Y/N)",
    "%(value)s is not a whole number",
    "%(value)s is not a number",
    "%(value)s is not a date (use 2026-03-02)",
    "%(value)s is not a valid month",
    "%(value)s is not a valid date",
    "%(field)s: %(error)s",
)
"""Message ids of service texts with values, most specific first (the first that matches wins)."""

NESTED_MESSAGES: tuple[str, ...] = (
    ' (did you mean "%(word)s"?)',
    # where an unknown key was found
    "item",
    "item.publish",
    "parameter %(name)s",
    "parameter reference",
    "condition",
    "records condition",
    "'%(op)s' condition",
    "'%(op)s' records condition",
    "test",
    "rule",
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

NESTED = frozenset({"hint", "what", "owner", "expected", "why", "problem", "error", "expect", "got"})
PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%")
SHAPES = {"hint": r'(?: \(did you mean "[^"]*"\?\))?', "line": r"\d+", "n": r"\d+"}
"""Placeholders that match a narrower text than any run of characters."""
LOCATION = re.compile(r"(?P<where>.+?:\d+(?::\d+)?): (?P<message>.+)", re.DOTALL)


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
            out.append(f"(?P<{name}>{SHAPES.get(name, '.*?' if name in NESTED else '.+?')})")
        at = m.end()
    out.append(re.escape(msgid[at:]))
    return re.compile("".join(out), re.DOTALL)


@lru_cache(maxsize=1)
def _patterns() -> tuple[list[tuple[str, re.Pattern[str]]], list[tuple[str, re.Pattern[str]]]]:
    return [(m, _pattern(m)) for m in MESSAGES], [(m, _pattern(m)) for m in NESTED_MESSAGES]


def translate_message(text: str, language: str) -> str:
    """`text` (a service's English message) in `language`; unchanged when no id matches it."""
    return _translate(text, language, nested=False)


def translate_problem(text: str, language: str) -> str:
    """A located problem as str(Problem) writes it (`file:line:column: message`), the message
    translated and the location kept."""
    m = LOCATION.fullmatch(text)
    if m and (message := translate_message(m["message"], language)) != m["message"]:
        return f"{m['where']}: {message}"
    return translate_message(text, language)


def _translate(text: str, language: str, nested: bool) -> str:
    top, inner = _patterns()
    for msgid, pattern in inner + top if nested else top:
        m = pattern.fullmatch(text)
        if m is None:
            continue
        values = {
            k: _translate(v, language, nested=True) if k in NESTED and v else v
            for k, v in m.groupdict().items()
        }
        translated = gettext(msgid, language)
        return translated % values if PLACEHOLDER.search(msgid) else translated
    return text
