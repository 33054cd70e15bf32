"""The importer's problem texts in the reader's language, for pages that show an import's report.

The importer (and the cell parsers it calls: validate.py, fields.py, readers.py) words its
problems in English with the masked value quoted inside, and a Problem carries no message code.
So each text the importer can produce is matched here by a pattern and given an English message
id with named placeholders, which the gettext catalogs translate. A part of a text that is
itself a message (the reason after `value:`) is translated the same way; a text no pattern
knows stays as it is. tests/residents/test_problemtext.py produces the texts and checks each is
matched and translated, so a new or reworded problem fails there instead of showing English.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .validate import AS_NUMBER

Gettext = Callable[[str], str]


@dataclass(frozen=True)
class Wording:
    pattern: re.Pattern[str]
    msgid: str
    nested: tuple[str, ...] = ()  # groups that are messages themselves, translated in turn


def _w(pattern: str, msgid: str, *nested: str) -> Wording:
    return Wording(re.compile(pattern), msgid, nested)


def _fixed(text: str) -> Wording:
    return Wording(re.compile(re.escape(text)), text)


WORDINGS: tuple[Wording, ...] = (
    # reasons of the cell checks (validate.py), also quoted after a masked value
    _fixed("not a valid phone number"),
    _fixed("not a valid e-mail address"),
    _fixed(AS_NUMBER),
    _fixed("an ID number has 17 digits and a check digit or X"),
    _fixed("the birth date inside the ID number is not a real date"),
    _fixed("the birth date inside the ID number is out of range"),
    _fixed("the ID number's check digit is wrong"),
    # rows and columns (importer.py, readers.py)
    _fixed("resident id is missing"),
    _fixed("column is not in the data dictionary and was ignored"),
    _fixed("no resident with this id has been imported"),
    _w(
        r"the cell holds (?P<n>[\d,]+) characters; at most (?P<max>[\d,]+) are accepted",
        "the cell holds %(n)s characters; at most %(max)s are accepted",
    ),
    _w(
        r"(?P<value>.*): (?P<reason>.+); dropped, row imported",
        "%(value)s: %(reason)s; dropped, row imported",
        "reason",
    ),
    _w(
        r"the cell holds more than one number; the first usable one, (?P<phone>.+), was used",
        "the cell holds more than one number; the first usable one, %(phone)s, was used",
    ),
    _w(
        r"(?P<label>.+?) (?P<date>\d{4}-\d{2}-\d{2}) contradicts the birth date in the ID number; "
        r"the cell's date was kept",
        "%(label)s %(date)s contradicts the birth date in the ID number; the cell's date was kept",
    ),
    _w(r"duplicate of row (?P<row>\d+)", "duplicate of row %(row)s"),
    _w(
        r"ID number (?P<id>\S+) is already resident (?P<owner>.+)'s in the register: "
        r"one person, one resident",
        "ID number %(id)s is already resident %(owner)s's in the register: one person, one resident",
    ),
    _w(
        r"ID number (?P<id>\S+) is already resident (?P<owner>.+)'s \(row (?P<row>\d+)\): "
        r"one person, one resident",
        "ID number %(id)s is already resident %(owner)s's (row %(row)s): one person, one resident",
    ),
    _w(r"a (?P<word>.+) row, not a resident: skipped", "a %(word)s row, not a resident: skipped"),
    # typed cells (fields.py)
    _w(
        r"(?P<value>.+?) is not an accepted spelling: (?P<listed>.*) \(built in, field (?P<field>\w+)\)",
        "%(value)s is not an accepted spelling: %(listed)s (built in, field %(field)s)",
    ),
    _w(
        r"(?P<value>.+?) is not an accepted spelling: (?P<listed>.*) "
        r"\(from fields\.yaml, field (?P<field>\w+)\)",
        "%(value)s is not an accepted spelling: %(listed)s (from fields.yaml, field %(field)s)",
    ),
    _w(
        r"(?P<value>.+) is not a yes/no value \(是/否, 有/无, √/×, true/false, 1/0, Y/N\)",
        "%(value)s is not a yes/no value (是/否, 有/无, √/×, true/false, 1/0, Y/N)",
    ),
    _w(r"(?P<value>.+) is not a whole number", "%(value)s is not a whole number"),
    _w(r"(?P<value>.+) is not a number", "%(value)s is not a number"),
    _w(r"(?P<value>.+) is not a date \(use 2026-03-02\)", "%(value)s is not a date (use 2026-03-02)"),
    _w(r"(?P<value>.+) is not a valid date", "%(value)s is not a valid date"),
    _w(r"(?P<value>.+) is not a valid month", "%(value)s is not a valid month"),
    _w(
        r"(?P<value>.+) gives only a year and month; (?P<label>.+) needs a full date such as "
        r"(?P<example>\S+) \(a field may accept months: precision: month in fields\.yaml\)",
        "%(value)s gives only a year and month; %(label)s needs a full date such as %(example)s "
        "(a field may accept months: precision: month in fields.yaml)",
    ),
    # the whole file (readers.py, textcodec.py, xlsxguard.py, importer.py), after "FILE: "
    _fixed(
        "no resident id column (a header such as 居民编号 or resident_id is required "
        "in one of the first rows; looked at rows 1-10)"
    ),
    _w(
        r"columns (?P<a>.+) and (?P<b>.+) both hold (?P<label>.+) \((?P<field>\w+)\)",
        "columns %(a)s and %(b)s both hold %(label)s (%(field)s)",
    ),
    _fixed("the file is empty (expected a header row)"),
    _w(
        r"sheet (?P<sheet>.+) is empty \(expected a header row\)",
        "sheet %(sheet)s is empty (expected a header row)",
    ),
    _w(r"not a readable XLSX workbook \((?P<detail>.*)\)", "not a readable XLSX workbook (%(detail)s)"),
    _w(
        r"line (?P<line>\d+): not readable as CSV \((?P<detail>.*)\); cells are limited to 10,000 characters",
        "line %(line)s: not readable as CSV (%(detail)s); cells are limited to 10,000 characters",
    ),
    _w(
        r"not UTF-8 or GBK text \((?P<detail>.*)\); it may be Big5 or another encoding: "
        r"save it as UTF-8 \(CSV UTF-8 in Excel\) or as XLSX and import again",
        "not UTF-8 or GBK text (%(detail)s); it may be Big5 or another encoding: "
        "save it as UTF-8 (CSV UTF-8 in Excel) or as XLSX and import again",
    ),
    _w(
        r"refused, part (?P<part>\S+) would expand to (?P<size>[\d,]+) bytes \((?P<ratio>[\d,]+) times "
        r"its compressed size\); a real roster is far smaller: re-save the sheet with only the roster's "
        r"rows and columns",
        "refused, part %(part)s would expand to %(size)s bytes (%(ratio)s times its compressed size); "
        "a real roster is far smaller: re-save the sheet with only the roster's rows and columns",
    ),
    _w(
        r"refused, the workbook would expand to (?P<size>[\d,]+) bytes \(limit (?P<limit>[\d,]+)\)",
        "refused, the workbook would expand to %(size)s bytes (limit %(limit)s)",
    ),
    # last: a masked value and its reason (ID numbers: "110101********1234: <reason>")
    _w(r"(?P<value>[^:]+): (?P<reason>.+)", "%(value)s: %(reason)s", "reason"),
)
"""Every problem text the importer words, most specific first; the first full match is used."""


def translate(text: str, gettext: Gettext) -> str:
    """`text` in the catalog's language; unchanged when no pattern knows it."""
    found = known(text, gettext)
    return text if found is None else found


def known(text: str, gettext: Gettext) -> str | None:
    """The translation of `text`, or None when it (or a message inside it) is not known."""
    for wording in WORDINGS:
        m = wording.pattern.fullmatch(text)
        if m is None:
            continue
        values = m.groupdict()
        for name in wording.nested:
            inner = known(values[name], gettext)
            if inner is None:
                break
            values[name] = inner
        else:
            return gettext(wording.msgid) % values if values else gettext(wording.msgid)
    return None
