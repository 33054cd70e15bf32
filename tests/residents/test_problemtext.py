"""Every problem text the importer words is known to problemtext.py and translated to Chinese:
the texts are produced by real imports of bad rosters, so a new or reworded problem fails here."""

from __future__ import annotations

import csv
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pytest

from notifier.app import App
from notifier.console.importcheck import file_problem
from notifier.errors import InputError
from notifier.i18n import translations
from notifier.residents.importer import import_records, import_residents
from notifier.residents.problemtext import WORDINGS, known, translate
from notifier.samplegen import id_check_char
from tests.support.project import write_config

ZH = translations("zh_CN").gettext
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def idn(first17: str) -> str:
    return first17 + id_check_char(first17)


ID_A, ID_B = idn("11010119500307123"), idn("41010219961201002")


@pytest.fixture
def sapp(tmp_path: Path, sqlite_url: str) -> Iterator[App]:
    cfg = write_config(tmp_path, sqlite_url)
    fields = tmp_path / "rules" / "fields.yaml"
    fields.write_text(
        fields.read_text(encoding="utf-8").replace(
            "\nrecords:",
            "  joined: {type: date, precision: month, label: 入户年月, columns: [入户年月]}\n\nrecords:",
        ),
        encoding="utf-8",
    )
    app = App.open(cfg)
    yield app
    app.close()


def write(path: Path, rows: list[list[str]], encoding: str = "utf-8") -> Path:
    with path.open("w", encoding=encoding, newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def row_texts(app: App, tmp_path: Path) -> list[str]:
    """The problems of rosters with one bad cell of every kind (and a second import against the register)."""
    header = ["居民编号", "姓名", "手机号码", "电子邮箱", "身份证号", "性别", "首选通知方式", "是否低保对象"]
    header += ["家庭人口数", "家庭人均年收入", "出生日期", "入户年月", "备注"]
    blank = [""] * (len(header) - 1)

    def row(rid: str, **cells: str) -> list[str]:
        values = dict(zip(header[1:], blank, strict=True)) | cells
        return [rid, *(values[h] for h in header[1:])]

    rows = [
        header,
        row("R1", 身份证号=ID_A),
        row("R2", 手机号码="1380013800"),  # not a valid phone number; dropped
        row("R3", 电子邮箱="bad@"),  # not a valid e-mail address; dropped
        row("R4", 手机号码="13800000001 / 13800000002"),  # more than one number
        row("R5", 身份证号="4.10102E+17"),  # stored as a number
        row("R6", 身份证号="1101011990030700"),  # 17 digits and a check digit
        row("R7", 身份证号=idn("11010119901301003")),  # month 13: not a real date
        row("R8", 身份证号=idn("11010118800101003")),  # born 1880: out of range
        row("R9", 身份证号=ID_B[:-1] + ("0" if ID_B[-1] != "0" else "1")),  # wrong check digit
        row("", 姓名="无编号"),  # resident id is missing
        row("R1"),  # duplicate of row 2
        row("R10", 身份证号=ID_A),  # ID number already resident R1's (row 2)
        row("R11", 身份证号=ID_B, 出生日期="1996-12-02"),  # contradicts the ID number
        row("R12", 性别="未知"),  # not an accepted spelling (fields.yaml)
        row("R13", 首选通知方式="飞鸽"),  # not an accepted spelling (built in)
        row("R14", 是否低保对象="也许"),  # not a yes/no value
        row("R15", 家庭人口数="2.5"),  # not a whole number
        row("R16", 家庭人均年收入="很多"),  # not a number
        row("R17", 出生日期="昨天"),  # not a date
        row("R18", 出生日期="2026-02-30"),  # not a valid date
        row("R19", 出生日期="1996.12"),  # only a year and month
        row("R20", 入户年月="1996.13"),  # not a valid month
        row("R21", 姓名="x" * 10_001),  # the cell is too long
        ["合计", *blank],  # a footer row
    ]
    first = import_residents(app, write(tmp_path / "cells.csv", rows))
    again = import_residents(app, write(tmp_path / "again.csv", [["居民编号", "身份证号"], ["R99", ID_A]]))
    grants = import_records(app, "grants", write(tmp_path / "g.csv", [["居民编号", "金额"], ["NOBODY", "5"]]))
    return [p.message for r in (first, again, grants) for p in (*r.errors, *r.warnings)]


def file_texts(app: App, tmp_path: Path) -> list[str]:
    """The refusals of whole files, as the console shows them (the file's path taken off)."""
    wb = openpyxl.Workbook()
    wb.active.append(["居民编号", "姓名"])
    wb.save(tmp_path / "ok.xlsx")
    bomb = tmp_path / "bomb.xlsx"
    with (
        zipfile.ZipFile(tmp_path / "ok.xlsx") as src,
        zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            if info.filename != "xl/worksheets/sheet1.xml":
                dst.writestr(info, src.read(info))
        with dst.open("xl/worksheets/sheet1.xml", "w") as member:
            for _ in range(17):  # 17 MiB of blanks, a few KB compressed
                member.write(b" " * (1 << 20))
    empty_sheet = openpyxl.Workbook()
    empty_sheet.active.title = "空表"
    empty_sheet.save(tmp_path / "empty-sheet.xlsx")
    files = [
        write(tmp_path / "no-id.csv", [["姓名"], ["张三"]]),
        write(tmp_path / "twice.csv", [["居民编号", "手机号码", "手机"], ["R1", "", ""]]),
        write(tmp_path / "empty.csv", []),
        tmp_path / "empty-sheet.xlsx",
        bomb,
        write(tmp_path / "long.csv", [["居民编号", "姓名"], ["R1", "x" * 200_000]]),
    ]
    (tmp_path / "broken.xlsx").write_bytes(b"not a zip")
    (tmp_path / "big5.csv").write_bytes("居民编号,姓名\n".encode() + b"R1,\xff\xff\n")
    files += [tmp_path / "broken.xlsx", tmp_path / "big5.csv"]
    out = []
    for f in files:
        with pytest.raises(InputError) as caught:
            import_residents(app, f, dry_run=True)
        shown = file_problem(caught.value.message, str(f), f.name, "zh_CN")
        assert str(tmp_path) not in shown
        out.append(caught.value.message.removeprefix(f"{f}: "))
    return out


NOT_PRODUCED = ["refused, the workbook would expand to 2,147,483,650 bytes (limit 2,147,483,648)"]
"""Texts too costly to produce in a test (a 2 GiB workbook), checked as written in xlsxguard.py."""


def test_every_text_the_importer_words_is_translated(sapp: App, tmp_path: Path) -> None:
    texts = row_texts(sapp, tmp_path) + file_texts(sapp, tmp_path) + NOT_PRODUCED
    unknown = [t for t in texts if known(t, ZH) is None]
    assert unknown == []
    for t in texts:
        zh = translate(t, ZH)
        assert zh != t and re.search(r"[\u4e00-\u9fff]", zh), t
    used = set().union(*(wordings_in(t) for t in texts))
    assert {w.msgid for w in WORDINGS} - used == set()  # no wording left that nothing produces


def wordings_in(text: str) -> set[str]:
    """The message ids matching `text` and the messages nested in it."""
    found = set()
    for w in WORDINGS:
        m = w.pattern.fullmatch(text)
        if m is not None:
            found.add(w.msgid)
            found |= set().union(*(wordings_in(m.group(g)) for g in w.nested))
    return found


@pytest.mark.parametrize("wording", WORDINGS, ids=lambda w: w.msgid[:40])
def test_each_message_id_has_a_chinese_translation_with_the_same_placeholders(wording: object) -> None:
    msgid = wording.msgid  # type: ignore[attr-defined]
    zh = ZH(msgid)
    assert zh != msgid and sorted(PLACEHOLDER.findall(zh)) == sorted(PLACEHOLDER.findall(msgid))


def test_nested_reasons_and_values_are_translated_and_unknown_text_is_kept() -> None:
    assert translate("110101********1234: the ID number's check digit is wrong", ZH) == (
        "110101********1234：身份证号校验码错误"
    )
    assert translate("138****0000: not a valid phone number; dropped, row imported", ZH).startswith(
        "138****0000：不是有效的电话号码"
    )
    assert translate("something new: nobody knows this", ZH) == "something new: nobody knows this"
    assert translate("duplicate of row 7", translations("en").gettext) == "duplicate of row 7"
