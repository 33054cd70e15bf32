"""Letters through a real send: resident fields with newlines, `<`, `&`, quotes and tabs never
break a letter file or the roster (escaped, read back exactly), and a letter that cannot be
written fails alone: other letters, other channels and other runs still go out, now and on the
next send."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
import sqlalchemy as sa

from notifier import runs
from notifier.app import App
from notifier.residents.importer import import_residents
from notifier.storage.schema import audit_events, deliveries
from tests.support.campaign import ON, approve_all, by_resident, rule, send, write_roster
from tests.support.project import write_config

NASTY = [
    # resident_id, name, address, township, village: every field a letter or the roster shows
    ["L01", '王"一"\n<b>二</b>', '东村<1>号 & "后院"\n二单元', "城关镇", "东村"],
    ["L02", "李&amp;四 -->", "西村\t2号 --!> <!-- x", "河口乡\n(北)", "西村'<script>"],
    ["L03", "赵五", "南村3号", "城关镇", "南村"],
]


def people_csv(path: Path, people: list[list[str]]) -> None:
    write_roster(
        path,
        [
            [rid, name, "", "", addr, town, village, "农村", "2", ""]
            for rid, name, addr, town, village in people
        ],
    )


@pytest.fixture
def lapp(tmp_path: Path, db_url: str) -> Iterator[App]:
    cfg = write_config(tmp_path, db_url, "[sending]\nretry_base_seconds = 0\n")
    people_csv(tmp_path / "p.csv", NASTY)
    a = App.open(cfg)
    import_residents(a, tmp_path / "p.csv")
    yield a
    a.close()


class Letters(HTMLParser):
    """The printable file's structure: each section's address block text and any stray tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.sections: list[dict[str, str]] = []
        self.tags: set[str] = set()
        self.comments: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        a = dict(attrs)
        if tag == "section":
            self.sections.append({"id": a.get("id") or "", "address": "", "ref": ""})
        if tag not in ("br", "meta"):
            self.stack.append(a.get("class") or tag)

    def handle_endtag(self, tag: str) -> None:
        if tag not in ("br", "meta"):
            assert self.stack, f"</{tag}> closes nothing"
            self.stack.pop()

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)

    def handle_data(self, data: str) -> None:
        if self.sections and self.stack and self.stack[-1] in ("address", "ref"):
            self.sections[-1][self.stack[-1]] += data

    def handle_comment(self, data: str) -> None:
        self.comments.append(data)


def test_markup_and_newlines_in_resident_fields_are_escaped(lapp: App, tmp_path: Path) -> None:
    run_id = runs.create_run(lapp, rule(lapp), ON, "clerk").run
    approve_all(lapp, run_id)
    report = send(lapp, run_id)
    assert (report.sent, report.failed, report.by_channel) == (3, 0, {"letter": 3})
    ids = {k: v.id for k, v in by_resident(lapp, run_id).items()}

    text = (tmp_path / "letters" / f"run-{run_id}.html").read_text(encoding="utf-8")
    parsed = Letters()
    parsed.feed(text)
    parsed.close()
    assert parsed.stack == [] and parsed.comments == []
    assert parsed.tags <= {
        "html",
        "head",
        "meta",
        "title",
        "style",
        "body",
        "section",
        "div",
        "br",
        "h1",
        "p",
        "strong",
    }
    by_id = {s["id"]: s for s in parsed.sections}
    assert set(by_id) == {f"d{i}" for i in ids.values()}
    for rid, name, addr, _, _ in NASTY:
        section = by_id[f"d{ids[rid]}"]
        assert (
            section["address"] == addr.replace("\n", "") + name.replace("\n", "") + " 收"
        )  # <br> between lines
        assert section["ref"].endswith(f"居民编号 {rid}")

    with (tmp_path / "letters" / f"run-{run_id}-roster.csv").open(encoding="utf-8-sig", newline="") as f:
        roster = list(csv.DictReader(f))
    assert [
        (r["居民编号"], r["姓名"], r["乡镇"], r["村"], r["地址"], r["通知事项"], r["投递编号"])
        for r in roster
    ] == [
        (rid, name, town, village, addr, "2026年耕地地力保护补贴发放公示", str(ids[rid]))
        for rid, name, addr, town, village in sorted(NASTY, key=lambda p: (p[3], p[4], p[0]))
    ]


def test_a_letter_that_cannot_be_written_fails_alone(lapp: App, tmp_path: Path) -> None:
    people_csv(tmp_path / "more.csv", [["L04", "孙六", "东村6号", "城关镇", "东村"]])
    import_residents(lapp, tmp_path / "more.csv")
    with lapp.engine.begin() as conn:  # L04 can also be e-mailed
        conn.execute(
            lapp.residents.update()
            .where(lapp.residents.c.resident_id == "L04")
            .values(email="sun6@example.com")
        )
    run_id = runs.create_run(lapp, rule(lapp), ON, "clerk").run
    approve_all(lapp, run_id)
    ids = {k: v.id for k, v in by_resident(lapp, run_id).items()}
    # L02's page cannot be created: something else (here a folder) already holds its name.
    blocked = tmp_path / "letters" / f"run-{run_id}" / "pages" / f"{ids['L02']:08d}.html"
    blocked.mkdir(parents=True)

    report = send(lapp, run_id)
    assert (report.sent, report.failed, report.by_channel) == (3, 1, {"letter": 2, "email": 1})
    rows = by_resident(lapp, run_id)
    assert {k: r.status for k, r in rows.items()} == {
        "L01": "sent",
        "L02": "failed",
        "L03": "sent",
        "L04": "delivered",
    }
    assert rows["L02"].error_code == "write" and "cannot write the letter" in rows["L02"].reason
    assert (
        "李" not in rows["L02"].reason and "西村" not in rows["L02"].reason
    )  # no personal data in the reason
    assert not list(blocked.parent.glob("*.tmp"))
    assert runs.show_run(lapp, run_id)["status"] == "completed"
    text = (tmp_path / "letters" / f"run-{run_id}.html").read_text(encoding="utf-8")
    assert text.count('<section class="letter"') == 2 and f'id="d{ids["L01"]}"' in text

    # The next send, for another run, is not held up by the broken page of the first.
    path = tmp_path / "rules" / "farm-subsidy-2026.yaml"  # a second notice to the same residents
    other = path.with_name("farm-subsidy-2026-b.yaml")
    other.write_text(
        path.read_text(encoding="utf-8").replace("id: farm-subsidy-2026", "id: farm-subsidy-2026-b"),
        encoding="utf-8",
    )
    second = runs.create_run(lapp, rule(lapp, "farm-subsidy-2026-b"), ON, "clerk").run
    approve_all(lapp, second)
    report = send(lapp)
    assert (report.sent, report.failed) == (4, 0)
    assert (tmp_path / "letters" / f"run-{second}.html").read_text(encoding="utf-8").count(
        '<section class="letter"'
    ) == 3
    with lapp.engine.connect() as conn:
        reasons = [
            json.loads(p).get("reason", "")
            for p in conn.execute(
                sa.select(audit_events.c.payload).where(audit_events.c.subject == f"delivery:{ids['L02']}")
            ).scalars()
        ]
        assert (
            conn.execute(
                sa.select(sa.func.count()).select_from(deliveries).where(deliveries.c.status == "failed")
            ).scalar_one()
            == 1
        )
    assert any("cannot write the letter" in r for r in reasons)
