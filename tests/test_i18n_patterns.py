"""Service messages with values, translated by message id (i18n/patterns.py): every id has a
Chinese translation with the same placeholders, and what rule loading and checking really say
is matched, so a changed English message is caught here rather than shown untranslated."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from notifier.i18n import translations
from notifier.i18n.patterns import MESSAGES, NESTED_MESSAGES, translate_message, translate_problem
from notifier.rules.checking import check_rules
from tests.support.project import REPO

PLACEHOLDER = re.compile(r"%\((\w+)\)s")
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


def test_every_message_id_has_a_chinese_translation_with_the_same_placeholders() -> None:
    catalog = translations("zh_CN")
    for msgid in (*MESSAGES, *NESTED_MESSAGES):
        zh = catalog.gettext(msgid)
        assert zh != msgid, msgid
        assert set(PLACEHOLDER.findall(zh)) == set(PLACEHOLDER.findall(msgid)), msgid
        assert zh.count("%%") == msgid.count("%%"), msgid


@pytest.mark.parametrize(
    ("english", "chinese"),
    [
        ("unknown field 'incom' (did you mean \"income\"?)", "未知的字段 'incom'（是否应为“income”？）"),
        (
            "unknown key 'publsh' in item (did you mean \"publish\"?)",
            "item（事项）中有未知的键 'publsh'（是否应为“publish”？）",
        ),
        ("unknown key 'x' in parameter 'rate'", "参数 'rate'中有未知的键 'x'"),
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
        ("no resident 'X' in the register", "花名册中没有居民 'X'"),
        (
            "'dibao' is a yes/no field; 'maybe' is not true/false",
            "'dibao' 是“是/否”字段；'maybe' 不是 true/false",
        ),
        (
            "a number's exponent must be between -30 and 30 (quote it if it is text)",
            "数字的指数须在 -30 与 30 之间（如为文本请加引号）",
        ),
    ],
)
def test_messages_with_values_are_translated(english: str, chinese: str) -> None:
    assert translate_message(english, "zh_CN") == chinese
    assert translate_message(english, "en") == english


def test_a_text_no_id_matches_is_kept_and_a_location_is_kept() -> None:
    assert translate_message("something nobody wrote", "zh_CN") == "something nobody wrote"
    assert translate_message(
        "a number's exponent must be between -3 and 30 (quote it if it is text)", "zh_CN"
    ) == (
        "a number's exponent must be between -3 and 30 (quote it if it is text)"
    )  # the same value twice, or no match
    assert (
        translate_problem("rules/x.yaml:3:5: unknown field 'a'", "zh_CN")
        == "rules/x.yaml:3:5: 未知的字段 'a'"
    )


def test_what_rule_loading_and_checking_say_is_all_translated(tmp_path: Path) -> None:
    for sub in ("rules", "templates"):
        shutil.copytree(REPO / sub, tmp_path / sub)
    (tmp_path / "rules" / "broken.yaml").write_text(BROKEN, encoding="utf-8")
    farm = (tmp_path / "rules" / "farm-subsidy-2026.yaml").read_text(encoding="utf-8")
    (tmp_path / "rules" / "farm-subsidy-2026.yaml").write_text(
        farm.replace("expect: no_match", "expect: match"), encoding="utf-8"
    )  # an embedded test that fails
    report = check_rules([tmp_path / "rules"], tmp_path / "rules" / "fields.yaml", tmp_path / "templates")
    messages = [p.message for p in report.errors]
    assert len(messages) > 30 and any(m.startswith("test '城镇户籍不通知'") for m in messages)
    untranslated = [m for m in messages if translate_message(m, "zh_CN") == m]
    assert untranslated == []
