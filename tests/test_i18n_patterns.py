"""Service texts with values, translated by message id (i18n/patterns.py). The texts are produced
by real imports of bad rosters, real checks of broken rule files and a real preview, and each
must be known and translated to Chinese; every message id must be used by them and have a
Chinese translation with the same placeholders, once in the catalog. So a new or reworded text
fails here rather than showing English on the console."""

from __future__ import annotations

import csv
import re
import shutil
import zipfile
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import openpyxl
import pytest

from notifier.app import App
from notifier.console.importcheck import file_problem
from notifier.errors import InputError
from notifier.i18n import LANGUAGES, LOCALE_DIR, translations
from notifier.i18n.patterns import MESSAGES, NESTED_MESSAGES, parse, translate
from notifier.preview import preview
from notifier.residents.importer import import_records, import_residents
from notifier.rules.checking import check_rules
from notifier.rules.load import find_rule
from notifier.samplegen import id_check_char
from tests.support.project import REPO, write_config

PLACEHOLDER = re.compile(r"%\((\w+)\)s")
CHINESE = re.compile(r"[\u4e00-\u9fff]")


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
    died = write(tmp_path / "died.csv", [["居民编号", "状态"], ["R1", "死亡"]])
    import_residents(app, died)
    back = import_residents(app, write(tmp_path / "back.csv", [["居民编号", "状态"], ["R1", "正常"]]))
    reports = (first, again, grants, back)
    return [p.message for r in reports for p in (*r.errors, *r.warnings)]


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


# One rule file with a mistake on nearly every line (line numbers matter to no test).
BROKEN = """id: Broken_One
item: {title: 测试, domain: farm_subsidyy, disclosure: secret, publish: {from: 2026-05-01, until: 2026-01-01}}
parameters:
  Bad-Name: {values: {2026-01-01: 1}}
  rate: {values: {yesterday: 1, 2026-01-01: many}}
match:
  all:
    - {id: a, field: incom, less_than: 3}
    - {id: a, field: registration, equals: rurall}
    - {field: farmland_mu, greater_than: abc}
    - {field: farmland_mu, less_than: {param: nope}}
    - {field: registration, less_than: 3}
    - {field: birth_date, age_at_least: many}
    - {field: farmland_mu, age_below: 3}
    - {field: registration}
    - {field: farmland_mu, between: [1]}
    - {field: dibao, equals: maybe}
    - {field: dibao, is_missing: 3, if_missing: sometimes}
    - {field: registration, in: []}
    - {field: registration, equals: rural, greater_than: 1}
    - {any: {records: grantz}}
    - {none: {records: grants, where: {colour: red}, within_years: 0}}
    - any: []
channels: [sms, emial, sms, letter]
templates: {sms: nope.sms.j2, fax: x.j2, letter: ../../etc/passwd}
schedule: {cron: "bad"}
tests:
  - {name: t1, on: 2026-01-01, resident: {farmland_mu: x, colour: red}, expect: matc}
  - {name: t2, on: someday}
  - 3
extra: 1
"""


ITEM = (
    "{title: t, domain: farm_subsidy, department: d, url: u, "
    "publish: {from: 2026-01-01, until: 2026-12-31}, disclosure: public}"
)
TWIN = (
    f"id: twin\nitem: {ITEM}\nmatch: {{field: dibao, equals: true}}\n"
    "channels: [letter]\ntemplates: {letter: plain.letter.j2}\n"
)
LACKING = (
    f"id: lacking\nitem: {ITEM}\nmatch: {{field: resident_id, in: [R1, R4]}}\n"
    "channels: [sms]\ntemplates: {sms: lacking.sms.j2}\n"
)
"""A rule whose template prints a field the rule does not require (farmland_mu)."""

# More rule files, each with mistakes the first one cannot make along with its own.
MORE = {
    "second.yaml": """id: second-one
item: [x]
parameters: [1]
match:
  any:
    - 3
    - {id: b, label: x}
    - {id: Bad, field: household_size, equals: 2.5}
    - {id: c, field: household_size, equals: 1}
    - {id: c, field: birth_date, equals: x}
    - {field: name, equals: 3.5}
    - {field: dibao, equals: true, colour: 1}
    - {field: dibao, equals: true, if_missing: sometimes}
    - {all: [{field: gender, equals: male}], colour: 1}
    - {any: {records: grants, colour: 1}, extra: 2}
    - {any: {records: grants, where: 3}}
    - {any: {records: visits, within_years: 2}}
channels: sms
templates: [x]
schedule: 5
tests: 3
""",
    "third.yaml": """id: third-one
item: {title: t, colour: 1, publish: {from: x, until: 2026-01-01, colour: 1}}
parameters:
  p: {unit: 元, values: {2026-01-01: 1}, colour: 1}
  q: {unit: 元}
match:
  all:
    - {field: income_per_capita, less_than: {param: p, times: x, colour: 1}}
    - {field: birth_date, less_than: {param: p}}
channels: [sms, email, letter]
templates: {sms: /etc/passwd, email: 'a\\\\b', letter: ' '}
schedule: {once: x}
tests:
  - {name: t, on: 2026-01-01, resident: 3, expect: match, colour: 1}
  - {name: u, on: 2026-01-01, resident: {}, grants: 3, expect: match}
  - {name: v, on: 2026-01-01, resident: {}, grants: [3], expect: match}
""",
    "fourth.yaml": """id: fourth-one
item: {title: t, domain: farm_subsidy, department: d, url: u, publish: 3, disclosure: public}
match: {field: dibao, equals: true}
channels: [sms, email]
templates: {sms: farm_subsidy.sms.j2}
""",
    "fifth.yaml": "id: fifth-one\nchannels: [sms]\n",
    "list.yaml": "- 1\n",
    "yaml.yaml": "id: a\nid: b\n[k]: 1\nn: 12345678901234567890123456789012345678901234567890\ne: 1e999\n",
    "invalid.yaml": "a: [\n",
    "twin-a.yaml": TWIN,
    "twin-b.yaml": TWIN,
    "sixth.yaml": f"""id: sixth-one
item: {ITEM}
match: {{field: dibao, equals: true}}
channels: [sms, email]
templates: {{sms: bad.sms.j2, email: plain.email.j2}}
""",
    "seventh.yaml": f"id: seventh-one\nitem: {ITEM}\nmatch: {{field: dibao, equals: true}}\n"
    "channels: [letter]\ntemplates: {letter: out.letter.j2}\n",
    "eighth.yaml": LACKING,
    "tenth.yaml": f"id: tenth-one\nitem: {ITEM}\naudience: sometimes\nmatch: {{field: dibao, equals: true}}\n"
    "channels: [letter]\ntemplates: {letter: plain.letter.j2}\n",
    "eleventh.yaml": f"id: eleventh-one\nitem: {ITEM}\naudience: changes\n"
    f"match: {{field: dibao, equals: true}}\n"
    "channels: [sms, letter]\ntemplates: {letter: plain.letter.j2, sms: {joined: bad.sms.j2, colour: x}}\n"
    "sms_templates: {aliyun: {code: SMS_1, sign: 县民政局, text: 您好, params: {}}}\n",
    "ninth.yaml": f"id: ninth-one\nitem: {ITEM}\nmatch: {{field: dibao, equals: true}}\nchannels: [letter]\n"
    "templates: {letter: plain.letter.j2}\ntests: [{name: r, on: 2026-03-01, resident: {}, expect: match}]\n",
}


def rule_texts(tmp_path: Path) -> list[str]:
    """What checking the sample rules, broken files and one failing embedded test says."""
    for sub in ("rules", "templates"):
        shutil.copytree(REPO / sub, tmp_path / sub)
    rules = tmp_path / "rules"
    (rules / "broken.yaml").write_text(BROKEN, encoding="utf-8")
    for name, text in MORE.items():
        (rules / name).write_text(text, encoding="utf-8")
    (rules / "latin.yaml").write_bytes(b"id: \xff\n")
    (rules / "folder.yaml").mkdir()
    templates = tmp_path / "templates"
    (templates / "bad.sms.j2").write_text("{{ x", encoding="utf-8")
    (templates / "plain.email.j2").write_text("hello", encoding="utf-8")
    (templates / "plain.letter.j2").write_text("<p>您好</p>", encoding="utf-8")
    (templates / "out.letter.j2").symlink_to(rules / "fields.yaml")
    (templates / "lacking.sms.j2").write_text(
        "{{ resident.name }}：耕地{{ resident.farmland_mu }}亩", encoding="utf-8"
    )
    fields = rules / "fields.yaml"
    fields.write_text(
        fields.read_text(encoding="utf-8")
        + "  visits:\n    label: 走访\n    fields:\n      note: {type: text, label: 备注}\n",
        encoding="utf-8",
    )
    farm = (rules / "farm-subsidy-2026.yaml").read_text(encoding="utf-8")
    (rules / "farm-subsidy-2026.yaml").write_text(
        farm.replace("expect: no_match", "expect: match"), encoding="utf-8"
    )  # an embedded test that fails
    report = check_rules([rules], fields, templates)
    messages = [p.message for p in report.errors]
    assert len(messages) > 30 and any(m.startswith("test '城镇户籍不通知'") for m in messages)
    return messages


def preview_texts(app: App, tmp_path: Path) -> list[str]:
    """What previewing the rule `lacking` says, after its publication window and for residents
    its template cannot render for, as the rule page lists it (warnings, a sample's lines)."""
    rule = find_rule("lacking", tmp_path / "rules", app.dictionary, tmp_path / "templates")
    shown = preview(app, rule, date(2027, 1, 5), 2, per_channel=True)
    errors = [line.strip() for s in shown.samples if s.error for line in s.error.splitlines()]
    assert len(shown.warnings) == 2 and errors
    return shown.warnings + errors


NOT_PRODUCED = ["refused, the workbook would expand to 2,147,483,650 bytes (limit 2,147,483,648)"]
"""Texts too costly to produce in a test (a 2 GiB workbook), checked as written in xlsxguard.py."""


def test_every_text_imports_rule_checks_and_previews_produce_is_translated(sapp: App, tmp_path: Path) -> None:
    texts = row_texts(sapp, tmp_path) + file_texts(sapp, tmp_path) + rule_texts(tmp_path / "r")
    texts += preview_texts(sapp, tmp_path / "r") + NOT_PRODUCED
    assert [t for t in texts if parse(t) is None] == []
    for t in texts:
        zh = translate(t, "zh_CN")
        assert zh != t and CHINESE.search(zh), t
        assert translate(t, "en") == t
    used = set().union(*(p.msgids() for t in texts if (p := parse(t))))
    assert set(MESSAGES + NESTED_MESSAGES) - used == set()  # no message id left that nothing says


def test_every_message_id_has_a_chinese_translation_with_the_same_placeholders() -> None:
    catalog = translations("zh_CN")
    for msgid in (*MESSAGES, *NESTED_MESSAGES):
        zh = catalog.gettext(msgid)
        assert zh != msgid, msgid
        assert sorted(PLACEHOLDER.findall(zh)) == sorted(PLACEHOLDER.findall(msgid)), msgid
        assert zh.count("%%") == msgid.count("%%"), msgid


@pytest.mark.parametrize("language", LANGUAGES)
def test_each_catalog_holds_each_message_id_once(language: str) -> None:
    po = (LOCALE_DIR / language / "LC_MESSAGES" / "notifier.po").read_text(encoding="utf-8")
    entries = re.findall(r'^msgid "(.+)"\n((?:msgstr .*\n)+)', po, re.MULTILINE)
    assert [m for m, n in Counter(m for m, _ in entries).items() if n > 1] == []
    assert [m for m, strs in entries if strs.count("msgstr ") != 1] == []
    assert len(entries) == po.count("\nmsgid ") - 1  # the header's empty msgid


@pytest.mark.parametrize(
    ("english", "chinese"),
    [
        ("unknown field 'incom' (did you mean \"income\"?)", "未知的字段 'incom'（是否应为“income”？）"),
        (
            "unknown key 'publsh' in item (did you mean \"publish\"?)",
            "item（事项）中有未知的键 'publsh'（是否应为“publish”？）",
        ),
        ("unknown key 'x' in parameter 'rate'", "参数 'rate'中有未知的键 'x'"),
        ("unknown key 'x' in parameter reference", "参数引用中有未知的键 'x'"),
        (
            "'farmland_mu' is a decimal field; 'abc' is not a number",
            "'farmland_mu' 是 decimal 类型的字段；'abc' 不是数字",
        ),
        (
            "2026-01-01 is outside the publication window of 'r' (2026-03-01 to 2027-12-31): "
            "`runs create --on 2026-01-01` would be refused",
            "2026-01-01 不在 'r' 的公示期内（2026-03-01 至 2027-12-31）：按 2026-01-01 创建发送批次会被拒绝",
        ),
        (
            "test 't1': expected match, got review (a unknown)",
            "测试 't1'：应为“符合”，实际为“需核实”（a unknown）",
        ),
        ("'grants' has no field 'colour'", "'grants' 没有字段 'colour'"),
        (
            "template ' ' is not a file name: a rule may only use files inside t",
            "模板 ' ' 不是文件名：规则只能使用 t 中的文件",
        ),
        (
            "a number's exponent must be between -30 and 30 (quote it if it is text)",
            "数字的指数须在 -30 与 30 之间（如为文本请加引号）",
        ),
        (
            "110101********1234: the ID number's check digit is wrong",
            "110101********1234：身份证号校验码错误",
        ),
        (
            "********00: not a valid phone number; dropped, row imported",
            "********00：不是有效的电话号码；该值已舍弃，该行照常导入",
        ),
        ("rules/x.yaml:3:5: unknown field 'a'", "rules/x.yaml:3:5: 未知的字段 'a'"),  # the location kept
    ],
)
def test_texts_with_values_are_translated(english: str, chinese: str) -> None:
    assert translate(english, "zh_CN") == chinese
    assert translate(english, "en") == english


@pytest.mark.parametrize(
    "text",
    [
        "something nobody wrote",
        "something new: nobody knows this",  # the reason after a value is not a message
        "a number's exponent must be between -3 and 30 (quote it if it is text)",  # not the same value twice
        "unknown key 'x' in somewhere new",  # where it was found is not known
        "rules/x.yaml:3:5: something nobody wrote",
    ],
)
def test_a_text_not_known_in_full_is_kept(text: str) -> None:
    assert parse(text) is None
    assert translate(text, "zh_CN") == text
