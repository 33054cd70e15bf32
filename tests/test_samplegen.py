"""Sample data generator: determinism, valid PRC ID numbers, deliberate errors, file round trips, speed."""

from __future__ import annotations

import csv
import io
import re
import time
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest

from notifier.fields import DataDictionary, header_map, load_dictionary, norm_header, parse_date
from notifier.residents.validate import check_id_number, normalize_email, normalize_phone
from notifier.samplegen import (
    GRANTS_HEADER,
    REASON_BIRTH_DATE,
    REASON_CHECK_DIGIT,
    REASON_INCOME,
    REASON_MISSING_ID,
    RESIDENTS_HEADER,
    WARN_EMAIL,
    WARN_PHONE,
    SampleData,
    generate,
    id_check_char,
    write_csv,
    write_xlsx,
)
from tests.support.project import REPO, write_config

TODAY = date(2026, 3, 1)
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
BUILTIN_HEADERS = {
    "居民编号",
    "姓名",
    "身份证号",
    "手机号码",
    "电子邮箱",
    "家庭住址",
    "乡镇",
    "村",
    "首选通知方式",
}


@pytest.fixture(scope="module")
def dictionary() -> DataDictionary:
    return load_dictionary(REPO / "rules" / "fields.yaml")


@pytest.fixture(scope="module")
def sample() -> SampleData:
    return generate(6000, seed=11, invalid=40, today=TODAY)


def col(name: str) -> int:
    return RESIDENTS_HEADER.index(name)


def mod11_2(first17: str) -> str:
    """ISO 7064 MOD 11-2, written out independently of the generator."""
    total = sum(int(d) * w for d, w in zip(first17, WEIGHTS, strict=False))
    return "10X98765432"[total % 11]


def test_deterministic_for_a_seed() -> None:
    a = generate(800, seed=5, invalid=9, today=TODAY)
    b = generate(800, seed=5, invalid=9, today=TODAY)
    assert a == b
    c = generate(800, seed=6, invalid=9, today=TODAY)
    assert c.residents_rows != a.residents_rows
    assert [r[0] for r in c.residents_rows if r[0]][:5] == [
        "R0000001",
        "R0000002",
        "R0000003",
        "R0000004",
        "R0000005",
    ]


@pytest.mark.parametrize("n", [0, 1, 2, 7, 1234])
def test_row_count_and_ids(n: int) -> None:
    data = generate(n, invalid=min(n, 3), today=TODAY)
    assert len(data.residents_rows) == n
    assert all(len(r) == len(RESIDENTS_HEADER) for r in data.residents_rows)
    assert all(isinstance(c, str) for r in data.residents_rows for c in r)
    for i, row in enumerate(data.residents_rows):
        assert row[0] == f"R{i + 1:07d}" or data.invalid_rows.get(i + 2) == REASON_MISSING_ID
    assert len(data.invalid_rows) == min(n, 3)


def test_invalid_argument() -> None:
    with pytest.raises(ValueError):
        generate(3, invalid=4)


def test_headers_are_declared(dictionary: DataDictionary) -> None:
    lookup = header_map(dictionary.all_fields())
    for h in RESIDENTS_HEADER:
        assert h in BUILTIN_HEADERS or any(h in spec.columns for spec in dictionary.fields.values()), h
        assert norm_header(h) in lookup, h
    assert len({lookup[norm_header(h)].name for h in RESIDENTS_HEADER}) == len(RESIDENTS_HEADER)
    grants = dictionary.records["grants"].fields
    assert GRANTS_HEADER[0] == "居民编号"
    assert all(any(h in spec.columns for spec in grants.values()) for h in GRANTS_HEADER[1:])


def test_valid_rows_have_correct_id_numbers(sample: SampleData) -> None:
    rows = [(i + 2, r) for i, r in enumerate(sample.residents_rows)]
    valid = [(n, r) for n, r in rows if n not in sample.invalid_rows]
    assert len(valid) == 6000 - 40
    for n, r in valid:
        idno = r[col("身份证号")]
        assert re.fullmatch(r"\d{17}[\dX]", idno), (n, idno)
        assert idno[17] == mod11_2(idno[:17]) == id_check_char(idno[:17]), (n, idno)
        assert check_id_number(idno) == idno
        born = date(int(idno[6:10]), int(idno[10:12]), int(idno[12:14]))
        assert parse_date(r[col("出生日期")]) == born, n
        assert 0 <= (TODAY - born).days <= 96 * 366
        male = r[col("性别")] in ("男", "M")
        assert r[col("性别")] in ("男", "M", "女", "F")
        assert int(idno[16]) % 2 == (1 if male else 0), (n, idno)
    ids = [r[col("身份证号")] for _, r in valid]
    assert len(set(ids)) == len(ids)
    assert len({r[col("居民编号")] for _, r in valid}) == len(valid)


def test_invalid_rows_are_invalid_for_their_reason(sample: SampleData, dictionary: DataDictionary) -> None:
    assert len(sample.invalid_rows) == 40
    assert set(sample.invalid_rows.values()) == {
        REASON_MISSING_ID,
        REASON_CHECK_DIGIT,
        REASON_INCOME,
        REASON_BIRTH_DATE,
    }
    numbers = sorted(sample.invalid_rows)
    assert numbers[0] < 6000 * 0.3 and numbers[-1] > 6000 * 0.7  # spread through the file
    assert not set(sample.invalid_rows) & set(sample.warning_rows)
    income = dictionary.fields["income_per_capita"]
    for n, reason in sample.invalid_rows.items():
        r = sample.residents_rows[n - 2]
        if reason == REASON_MISSING_ID:
            assert r[col("居民编号")] == ""
        elif reason == REASON_CHECK_DIGIT:
            idno = r[col("身份证号")]
            assert idno[17] != mod11_2(idno[:17])
            with pytest.raises(ValueError, match="check digit"):
                check_id_number(idno)
        elif reason == REASON_INCOME:
            with pytest.raises(ValueError):
                income.parse(r[col("家庭人均年收入")])
        elif reason == REASON_BIRTH_DATE:
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", r[col("出生日期")])
            with pytest.raises(ValueError):
                parse_date(r[col("出生日期")])
        else:
            pytest.fail(f"unknown reason {reason!r}")


def test_every_other_cell_parses(sample: SampleData, dictionary: DataDictionary) -> None:
    """Enum spellings come from fields.yaml; only the listed rows have bad cells, and warning rows
    only an unusable phone or e-mail."""
    lookup = header_map(dictionary.all_fields())
    specs = [lookup[norm_header(h)] for h in RESIDENTS_HEADER]
    bad_contacts = 0
    for i, row in enumerate(sample.residents_rows):
        n = i + 2
        if n in sample.invalid_rows:
            continue
        warn = sample.warning_rows.get(n)
        for spec, cell in zip(specs, row, strict=False):
            if spec.name == "phone" and cell:
                if warn == WARN_PHONE:
                    with pytest.raises(ValueError):
                        normalize_phone(cell)
                    bad_contacts += 1
                else:
                    normalize_phone(cell)
            elif spec.name == "email" and cell:
                if warn == WARN_EMAIL:
                    with pytest.raises(ValueError):
                        normalize_email(cell)
                    bad_contacts += 1
                else:
                    normalize_email(cell)
            elif spec.name == "id_number":
                check_id_number(cell)
            elif not spec.builtin or spec.name == "preferred_channel":
                spec.parse(cell)
    assert bad_contacts == len(sample.warning_rows) >= 10
    assert {WARN_PHONE, WARN_EMAIL} == set(sample.warning_rows.values())


def test_realistic_mix() -> None:
    data = generate(20000, seed=3, today=TODAY)
    rows = data.residents_rows
    n = len(rows)

    def share(pred) -> float:  # type: ignore[no-untyped-def]
        return sum(1 for r in rows if pred(r)) / n

    phone, email = col("手机号码"), col("电子邮箱")
    mobile = share(lambda r: re.fullmatch(r"(\+?86)?1[3-9]\d{9}", re.sub(r"[ \-]", "", r[phone])) is not None)
    assert 0.74 < mobile < 0.88
    assert 0.03 < share(lambda r: r[phone].lstrip("(").startswith("0371") and not r[email]) < 0.09
    assert 0.25 < share(lambda r: r[email] != "") < 0.36
    assert 0.03 < share(lambda r: r[email] and not r[phone]) < 0.11
    assert 0.03 < share(lambda r: not r[email] and not r[phone]) < 0.09
    assert share(lambda r: r[col("家庭住址")] != "") == 1.0
    assert 0.70 < share(lambda r: r[col("户籍类型")] in ("农村", "农业", "农业户口")) < 0.90
    assert 0.10 < share(lambda r: r[col("房屋安全等级")][0] in "CD") < 0.20
    assert 0.015 < share(lambda r: r[col("家庭人均年收入")] == "") < 0.05
    assert 0.05 < share(lambda r: r[col("是否低保对象")] in ("是", "1", "Y")) < 0.11
    assert 0.03 < share(lambda r: r[col("是否残疾")] in ("是", "1", "Y")) < 0.08
    assert 0.80 < share(lambda r: r[col("首选通知方式")] == "") < 0.98
    for r in rows:
        if r[col("是否低保对象")] in ("是", "1", "Y"):
            assert 300 <= int(r[col("低保金额")]) <= 900
        else:
            assert r[col("低保金额")] == ""
        if r[col("家庭人均年收入")]:
            assert 2000 <= float(r[col("家庭人均年收入")]) <= 60000
        assert 1 <= int(r[col("家庭人口数")]) <= 7
        land = r[col("承包耕地面积")]
        if r[col("户籍类型")] in ("农村", "农业", "农业户口"):
            assert re.fullmatch(r"0|\d{1,2}\.\d", land) and 0 <= float(land) <= 15
        else:
            assert land == ""
    names = [r[col("姓名")] for r in rows]
    assert all(2 <= len(x) <= 4 for x in names)
    assert any(x.startswith(("欧阳", "司马", "诸葛", "上官")) for x in names)
    top = [s for s, _ in Counter(x[0] for x in names).most_common(5)]
    assert {"王", "李", "张"} & set(top)
    spellings = Counter(r[col("户籍类型")] for r in rows)
    assert len(spellings) >= 4  # clerks spell differently
    ages = [(TODAY - parse_date(r[col("出生日期")])).days // 365 for r in rows]
    assert min(ages) == 0 and 90 <= max(ages) <= 96


def test_grants(sample: SampleData, dictionary: DataDictionary) -> None:
    assert sample.grants_header == GRANTS_HEADER
    assert 0.2 < len(sample.grants_rows) / len(sample.residents_rows) < 0.4
    valid_ids = {r[0] for i, r in enumerate(sample.residents_rows) if i + 2 not in sample.invalid_rows}
    spec = dictionary.records["grants"].fields
    domains: Counter[str] = Counter()
    for rid, kind, granted_on, amount in sample.grants_rows:
        assert rid in valid_ids
        domains[spec["item_domain"].parse(kind)] += 1
        day = parse_date(granted_on)
        assert TODAY - timedelta(days=5 * 366) <= day < TODAY
        assert Decimal("50") <= spec["amount"].parse(amount) <= Decimal("60000")
    assert set(domains) == set(dictionary.domains)
    assert len(set(map(tuple, sample.grants_rows))) == len(sample.grants_rows)


@pytest.mark.parametrize("encoding", ["gbk", "utf-8-sig", "utf-8"])
def test_csv_round_trip(sample: SampleData, tmp_path: Path, encoding: str) -> None:
    path = tmp_path / f"residents-{encoding}.csv"
    write_csv(path, sample.residents_header, sample.residents_rows, encoding=encoding)
    raw = path.read_bytes()
    text = raw.decode("gb18030" if encoding == "gbk" else encoding)
    if encoding == "gbk":
        with pytest.raises(UnicodeDecodeError):
            raw.decode("utf-8")
    back = list(csv.reader(io.StringIO(text, newline="")))
    assert back[0] == sample.residents_header
    assert back[1:] == sample.residents_rows


def test_csv_rejects_other_encodings(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_csv(tmp_path / "x.csv", ["a"], [["1"]], encoding="latin-1")


def test_xlsx_round_trip(tmp_path: Path) -> None:
    data = generate(1500, seed=9, invalid=5, today=TODAY)
    path = tmp_path / "residents.xlsx"
    write_xlsx(path, data.residents_header, data.residents_rows)
    wb = openpyxl.load_workbook(path, read_only=True)
    width = len(data.residents_header)
    got = [
        ["" if c is None else c for c in row]
        + [""] * (width - len(row))  # trailing empty cells are not stored
        for row in wb.worksheets[0].iter_rows(values_only=True)
    ]
    wb.close()
    assert got[0] == data.residents_header
    assert got[1:] == data.residents_rows  # every cell text, ID numbers intact


def test_generated_files_import_cleanly(tmp_path: Path, sqlite_url: str) -> None:
    """The importer rejects exactly the rows listed as invalid, warns about the listed ones, and
    takes every grant."""
    from notifier.app import App
    from notifier.residents.importer import import_records, import_residents

    data = generate(1200, seed=4, invalid=12, today=date.today())
    write_csv(tmp_path / "residents.csv", data.residents_header, data.residents_rows, encoding="gbk")
    write_csv(tmp_path / "grants.csv", data.grants_header, data.grants_rows)
    app = App.open(write_config(tmp_path / "project", sqlite_url))
    try:
        report = import_residents(app, tmp_path / "residents.csv")
        assert {e.row for e in report.errors} == set(data.invalid_rows)
        assert (report.imported, report.rejected) == (1200 - 12, 12)
        assert {w.row for w in report.warnings} == set(data.warning_rows)
        grants = import_records(app, "grants", tmp_path / "grants.csv")
        assert (grants.imported, grants.rejected) == (len(data.grants_rows), 0)
    finally:
        app.close()


def test_speed_200k() -> None:
    start = time.perf_counter()
    data = generate(200_000, invalid=500)
    elapsed = time.perf_counter() - start
    print(f"\nsamplegen: 200,000 residents and {len(data.grants_rows):,} grants in {elapsed:.2f} s")
    assert len(data.residents_rows) == 200_000 and len(data.invalid_rows) == 500
