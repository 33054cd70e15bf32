"""Rule-matching benchmark: N generated residents (default 1,000,000), 50 generated rules.

For each rule the engine computes what `rules preview` / `runs create` need: match, no_match and
review counts, which conditions lacked data, and the matched audience with contacts and a chosen
channel. Timed three ways in the same run, on the same data:

  per rule  `audience.evaluate` once per rule (what a preview or a run does): one scan each;
  one scan  `audience.evaluate_many` over all rules (what `rules preview --all` does);
  floor     hand-written SQL for the same conditions: one COUNT(*) and one SELECT of the matching
            ids per rule, in plain two-valued SQL (what a person would write, ignoring missing data).

`rules preview --all` (counts and channels only, `rules.counting.count_many`) is timed against
its own floor and a columnar reference, on each engine asked for (--engines sqlite,postgresql:
the same generated data on both, and the counts must be equal on both):

  --all     `count_many` as `rules preview --all` runs it (SQLite: split over threads by rowid
            when there are 2 CPUs and enough residents; PostgreSQL: one statement with parallel
            workers, EXPLAIN must show them), and in one part (`parts=1`);
  floor     one hand-written statement counting all rules in one scan (`SUM(CASE WHEN ...)`,
            two-valued), in one connection; the per-rule floor above needs one scan per rule;
  duckdb    the same hand-written statement in DuckDB over a copy of the same columns (a
            columnar engine using every core), if `duckdb` is installed (`pip install
            '.[bench]'`); it is not a dependency of notifier, and the script says when it is absent.

The script fails if the two engine paths disagree on any rule's counts, missing-data counts or
members (with channels), or if a rule's match count differs from the floor's (no generated rule
says if_missing: pass, so missing data matches in neither).

Then the same 50 rules with an `amount:` each (bands by age, per mu x rate with a cap, a sum, the
resident's own 低保 amount; every fifth rule also `notify: household`): the one scan with amounts
against the one scan without, best of --repeat each, alternating; the counts must be equal (no
amount field is missing in the data) and grouping the household rules' notices is timed apart.

    python bench/rules.py [--residents 1000000] [--rules 50] [--repeat 2] [--json]
                          [--engines sqlite,postgresql] [--preview-all-only]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, TypeVar

import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


from notifier.app import App  # noqa: E402
from notifier.audience import Audience, evaluate, evaluate_many  # noqa: E402
from notifier.households import notices  # noqa: E402
from notifier.rules.compile import RecordFlags, compile_rule  # noqa: E402
from notifier.rules.counting import RuleCount, count_many, statements  # noqa: E402
from notifier.rules.load import load_rules, rule_files  # noqa: E402
from notifier.rules.model import Rule  # noqa: E402
from notifier.storage.bulk import executemany  # noqa: E402
from notifier.storage.db import scan_settings  # noqa: E402
from notifier.storage.schema import records  # noqa: E402

ON = date(2026, 3, 2)
DOMAINS = ["low_income_allowance", "farm_subsidy", "rural_housing_repair", "disaster_relief", "elderly_care"]


def populate(app: App, n: int, rng: random.Random) -> None:
    t = app.residents
    now = datetime.now(timezone.utc)
    towns = ["城关镇", "柳林镇", "河口乡", "石桥乡", "东岭镇"]
    batch, grants = [], []
    with app.engine.begin() as conn:
        for i in range(n):
            rid = f"R{i:07d}"
            batch.append(
                {
                    "resident_id": rid,
                    "name": "张三",
                    "phone": f"+86138{i:08d}" if rng.random() < 0.8 else None,
                    "phone_kind": "mobile",
                    "email": f"u{i}@example.com" if rng.random() < 0.3 else None,
                    "address": f"{rng.choice(towns)}{i % 90}号",
                    "township": rng.choice(towns),
                    "village": f"{i % 37}村",
                    "created_at": now,
                    "updated_at": now,
                    "f_registration": "rural" if rng.random() < 0.8 else "urban",
                    "f_house_grade": rng.choices("ABCD", weights=(50, 35, 10, 5))[0],
                    "f_income_per_capita": None if rng.random() < 0.03 else Decimal(rng.randint(2000, 60000)),
                    "f_birth_date": date(1931, 1, 1) + timedelta(days=rng.randint(0, 34000)),
                    "f_household_size": rng.randint(1, 7),
                    "f_dibao": rng.random() < 0.08,
                    "f_dibao_monthly": Decimal(rng.randint(300, 900)),
                    "f_disabled": rng.random() < 0.05,
                    "f_farmland_mu": Decimal(rng.randint(0, 150)) / 10,
                    "f_gender": rng.choice(["male", "female"]),
                    "f_household_id": f"H{i // 3:07d}",
                    "f_is_head": i % 3 == 1,
                }
            )
            if rng.random() < 0.3:
                day = ON - timedelta(days=rng.randint(0, 5 * 365))
                grants.append(
                    {
                        "kind": "grants",
                        "resident_id": rid,
                        "record_date": day,
                        "data": {"item_domain": rng.choice(DOMAINS), "granted_on": day.isoformat()},
                        "fingerprint": f"{rid}-{len(grants)}",
                        "imported_at": now,
                    }
                )
            if len(batch) == 20000:
                executemany(conn, t.insert(), batch)
                batch = []
        executemany(conn, t.insert(), batch)
        executemany(conn, records.insert(), grants)
        conn.exec_driver_sql("ANALYZE")


AMOUNTS = [  # by rule shape: what a notice of that kind would state
    "amount: {bands: {field: age, table: [[null, 59, 20], [60, 79, 30], [80, null, 50]]}, max: 40}\n",
    "amount: {field: dibao_monthly}\n",
    "amount: {bands: {field: birth_date, table: [[60, 79, 50], [80, 89, 100], [90, null, 300]]}}\n",
    "amount:\n  sum:\n    - per: {param: rate_per_mu, times_field: farmland_mu}\n    - value: 12.5\n"
    "  max: {param: cap}\n",
    "amount: {per: {param: rate_per_mu, times_field: household_size}, min: 100}\n",
]
PARAMS = (
    "parameters:\n"
    "  rate_per_mu: {unit: 元/亩, reference: 某县农发〔2026〕12号, values: {2025-01-01: 105.5}}\n"
    "  cap: {unit: 元, values: {2025-01-01: 1000}}\n"
)


def make_rules(folder: Path, count: int, rng: random.Random, amount_folder: Path | None = None) -> list[str]:
    """Rules shaped like real notices: 2-4 conditions, selective (a few % of residents); in
    `amount_folder` the same rules with an amount each (every fifth one notify: household)."""
    hand: list[str] = []
    for i in range(count):
        line = 6000 + 200 * i
        age = 55 + i % 20
        grade = rng.choice(["[C, D]", "[D]", "[B, C, D]"])
        conds, sql = [], []
        shape = i % 5
        if shape == 0:
            conds += [
                "{field: registration, equals: rural}",
                f"{{field: house_grade, in: {grade}}}",
                f"{{field: income_per_capita, less_than: {line}}}",
                "{none: {records: grants, where: {item_domain: rural_housing_repair}, within_years: 3}}",
            ]
            sql += [
                "f_registration = 'rural'",
                f"f_house_grade IN ({', '.join(repr(g) for g in grade.strip('[]').split(', '))})",
                f"f_income_per_capita < {line}",
                "NOT EXISTS (SELECT 1 FROM records g WHERE g.kind = 'grants' "
                "AND g.resident_id = residents.resident_id "
                "AND json_extract(g.data, '$.item_domain') = 'rural_housing_repair' "
                f"AND g.record_date >= '{ON.replace(year=ON.year - 3)}')",
            ]
        elif shape == 1:
            conds += ["{field: dibao, equals: true}", f"{{field: dibao_monthly, at_least: {300 + i * 10}}}"]
            sql += ["f_dibao = 1", f"f_dibao_monthly >= {300 + i * 10}"]
        elif shape == 2:
            cutoff = ON.replace(year=ON.year - age)
            conds += [f"{{field: birth_date, age_at_least: {age}}}", "{field: disabled, equals: true}"]
            sql += [f"f_birth_date <= '{cutoff}'", "f_disabled = 1"]
        elif shape == 3:
            conds += [
                "{field: registration, equals: rural}",
                f"{{field: farmland_mu, between: [{i % 7 + 1}, {i % 7 + 3}]}}",
                f"{{field: household_size, at_least: {i % 4 + 3}}}",
            ]
            sql += [
                "f_registration = 'rural'",
                f"f_farmland_mu BETWEEN {i % 7 + 1} AND {i % 7 + 3}",
                f"f_household_size >= {i % 4 + 3}",
            ]
        else:
            conds += [
                f"{{any: [{{field: income_per_capita, less_than: {line // 2}}}, "
                "{field: dibao, equals: true}]}",
                "{field: house_grade, equals: D}",
            ]
            sql += [f"(f_income_per_capita < {line // 2} OR f_dibao = 1)", "f_house_grade = 'D'"]
        text = (
            f"id: bench-{i:02d}\nitem: {{title: 测试{i}, domain: farm_subsidy, department: 县局, url: https://example.gov.cn/{i}}}\n"
            "match:\n  all:\n" + "".join(f"    - {c}\n" for c in conds) + "channels: [sms, email, letter]\n"
            "templates: {sms: farm_subsidy.sms.j2, email: farm_subsidy.email.j2, "
            "letter: farm_subsidy.letter.j2}\n"
        )
        (folder / f"bench-{i:02d}.yaml").write_text(text, encoding="utf-8")
        if amount_folder is not None:
            extra = PARAMS + AMOUNTS[shape] + ("notify: household\n" if i % 5 == 2 else "")
            (amount_folder / f"bench-{i:02d}.yaml").write_text(text + extra, encoding="utf-8")
        hand.append(" AND ".join(sql))
    return hand


T = TypeVar("T")


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def cpu_timed(fn: Callable[[], T]) -> tuple[float, float, T]:
    """(wall, CPU) seconds: SQLite runs in this process, so CPU time is the scan's own cost even
    when other work on the machine stretches the wall clock."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w0, time.process_time() - c0, out


def per_rule(app: App, rules: list[Rule]) -> list[Audience]:
    return [evaluate(app, rule, ON) for rule in rules]


def one_scan(app: App, rules: list[Rule]) -> list[Audience]:
    many = evaluate_many(app, rules, ON)
    return [many[r.id] for r in rules]


def floor(app: App, hand: list[str]) -> list[tuple[int, int]]:
    """Per rule: (COUNT(*), number of ids selected)."""
    out = []
    with app.engine.connect() as conn:
        for where in hand:
            n = conn.exec_driver_sql(f"SELECT count(*) FROM residents WHERE {where}").scalar_one()
            ids = conn.exec_driver_sql(f"SELECT resident_id FROM residents WHERE {where}").all()
            out.append((n, len(ids)))
    return out


def for_postgresql(where: str) -> str:
    """A hand-written SQLite condition in PostgreSQL's spelling (JSON, booleans)."""
    where = where.replace("json_extract(g.data, '$.item_domain')", "g.data->>'item_domain'")
    return where.replace("f_dibao = 1", "f_dibao").replace("f_disabled = 1", "f_disabled")


def counting_sql(hand: list[str]) -> str:
    """All rules counted in one scan, as a person would write it (two-valued)."""
    return "SELECT " + ", ".join(f"SUM(CASE WHEN {w} THEN 1 ELSE 0 END)" for w in hand) + " FROM residents"


def floor_one_scan(app: App, hand: list[str]) -> list[int]:
    """The hand-written counting statement, in one connection with `count_many`'s settings."""
    if app.engine.dialect.name == "postgresql":
        hand = [for_postgresql(w) for w in hand]
    with app.reader.connect() as conn, conn.begin():
        scan_settings(conn)
        return [int(v or 0) for v in conn.exec_driver_sql(counting_sql(hand)).one()]


def parallel_plan(app: App, rules: list[Rule]) -> bool:
    """Whether PostgreSQL scans the register with parallel workers for `count_many`'s statement
    (a Parallel Seq Scan on residents under a Gather), with the settings it runs under."""
    flags = RecordFlags()
    compiled = [compile_rule(r, app.dictionary, app.residents, ON, flags) for r in rules]
    statement = statements(app.residents, compiled, [], flags)[1]
    with app.reader.connect() as conn, conn.begin():
        scan_settings(conn)
        sql = statement.compile(conn, compile_kwargs={"literal_binds": True})
        plan = "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {sql}"))
    return "Gather" in plan and "Parallel Seq Scan on residents" in plan


def preview_all(app: App, rules: list[Rule], hand: list[str], repeat: int, large: bool) -> dict[str, Any]:
    """`rules preview --all` on one engine: split (as run) and in one part, best of `repeat`,
    alternating; the one-scan floor; the old path (`evaluate_many`) for equality."""
    best: dict[str, tuple[float, float]] = {}
    counted: dict[str, dict[str, RuleCount]] = {}
    for _ in range(repeat):
        for name, parts in (("split", None), ("one_part", 1)):
            wall, cpu, counted[name] = cpu_timed(lambda p=parts: count_many(app, rules, ON, parts=p))
            old = best.get(name, (float("inf"), float("inf")))
            best[name] = (min(old[0], wall), min(old[1], cpu))
        wall, cpu, floor_counts = cpu_timed(lambda: floor_one_scan(app, hand))
        old = best.get("floor", (float("inf"), float("inf")))
        best["floor"] = (min(old[0], wall), min(old[1], cpu))
    old_s, old_auds = timed(lambda: one_scan(app, rules))
    assert counted["split"] == counted["one_part"], "the split count differs from one part's"
    assert [
        (counted["split"][a.compiled.rule.id].counts, counted["split"][a.compiled.rule.id].by_channel)
        for a in old_auds
    ] == [(a.counts, a.by_channel()) for a in old_auds], "count_many disagrees with evaluate_many"
    assert [counted["split"][r.id].counts["match"] for r in rules] == floor_counts, (
        "a count differs from the floor's"
    )
    out: dict[str, Any] = {f"{k}_seconds": round(v[0], 2) for k, v in best.items()}
    out |= {f"{k}_cpu_seconds": round(v[1], 2) for k, v in best.items()}
    out["evaluate_many_seconds"] = round(old_s, 2)
    out["ratio_split_to_floor"] = round(best["split"][0] / best["floor"][0], 2)
    out["counts"] = [counted["split"][r.id].counts for r in rules]
    out["by_channel"] = [counted["split"][r.id].by_channel for r in rules]
    if app.engine.dialect.name == "postgresql":
        out["parallel_scan_planned"] = parallel_plan(app, rules)
        # below ~100,000 residents the table is under min_parallel_table_scan_size (8 MB)
        assert out["parallel_scan_planned"] or not large, "PostgreSQL does not scan in parallel"
    return out


def duckdb_reference(app: App, hand: list[str], work: Path, repeat: int) -> dict[str, Any] | None:
    """The hand-written counting statement in DuckDB over a CSV copy of the columns the rules
    read (copying is not timed); None when duckdb is not installed."""
    try:
        import duckdb
    except ImportError:
        return None
    t = app.residents
    cols = [c for c in t.columns if c.name in ("resident_id", "left_at") or c.name.startswith("f_")]
    kinds = {sa.Date: "DATE", sa.Numeric: "DOUBLE", sa.Boolean: "INTEGER", sa.Integer: "BIGINT"}
    types = {c.name: next((v for k, v in kinds.items() if isinstance(c.type, k)), "VARCHAR") for c in cols}
    with (
        app.reader.connect() as conn,
        open(work / "r.csv", "w", newline="") as f,
        open(work / "g.csv", "w", newline="") as g,
    ):
        out = csv.writer(f)
        out.writerow(types)
        for rows in conn.execution_options(yield_per=50_000).execute(sa.select(*cols)).partitions():
            out.writerows([int(v) if isinstance(v, bool) else v for v in row] for row in rows)
        out = csv.writer(g)
        out.writerow(["kind", "resident_id", "record_date", "item_domain"])
        for r in conn.execute(
            sa.select(records.c.kind, records.c.resident_id, records.c.record_date, records.c.data)
        ):
            out.writerow([r.kind, r.resident_id, r.record_date, r.data.get("item_domain")])
    db = duckdb.connect()
    spec = ", ".join(f"'{k}': '{v}'" for k, v in types.items())
    db.execute(
        f"CREATE TABLE residents AS SELECT * FROM read_csv('{work / 'r.csv'}', header = true, "
        f"columns = {{{spec}}})"
    )
    db.execute(
        f"CREATE TABLE records AS SELECT * FROM read_csv('{work / 'g.csv'}', header = true, columns = "
        "{'kind': 'VARCHAR', 'resident_id': 'VARCHAR', 'record_date': 'DATE', 'item_domain': 'VARCHAR'})"
    )
    sql = counting_sql([w.replace("json_extract(g.data, '$.item_domain')", "g.item_domain") for w in hand])
    best = float("inf")
    for _ in range(repeat):
        seconds, row = timed(lambda: db.execute(sql).fetchone())
        best = min(best, seconds)
    threads = db.execute("SELECT current_setting('threads')").fetchone()
    db.close()
    return {
        "seconds": round(best, 2),
        "threads": threads[0] if threads else None,
        "counts": [int(v or 0) for v in row],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--residents", type=int, default=1_000_000)
    ap.add_argument("--rules", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=2, help="best of N for the amounts comparison")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--engines", default="sqlite", help="comma-separated: sqlite, postgresql (--all only)")
    ap.add_argument("--preview-all-only", action="store_true", help="time `rules preview --all` only")
    args = ap.parse_args()
    engines = args.engines.split(",")
    pg = None
    work = Path(tempfile.mkdtemp(prefix="notifier-rules-bench-"))
    try:
        (work / "rules").mkdir()
        (work / "amounts").mkdir()
        shutil.copy(REPO / "rules" / "fields.yaml", work / "rules")
        shutil.copytree(REPO / "templates", work / "templates")
        (work / "notifier.toml").write_text("", encoding="utf-8")
        rng = random.Random(7)
        hand = make_rules(work / "rules", args.rules, rng, work / "amounts")
        state = rng.getstate()  # the same residents on every engine
        all_rows: dict[str, dict[str, Any]] = {}
        duck = None
        for engine in engines:
            config = work / "notifier.toml"
            if engine == "postgresql":
                from tests.support.pgserver import PgServer

                pg = PgServer().start()
                config = work / "pg.toml"
                config.write_text(f'[database]\nurl = "{pg.create_database("rules")}"\n', encoding="utf-8")
            app = App.open(config)
            rng.setstate(state)
            t0 = time.perf_counter()
            populate(app, args.residents, rng)
            load_s = time.perf_counter() - t0
            loaded, problems = load_rules(rule_files(work / "rules"), app.dictionary, work / "templates")
            assert not problems, problems
            rules = list(loaded.values())
            all_rows[engine] = preview_all(app, rules, hand, args.repeat, args.residents >= 100_000) | {
                "populate_seconds": round(load_s, 1)
            }
            if duck is None:
                duck = duckdb_reference(app, hand, work, args.repeat)
                if duck is not None:
                    assert duck["counts"] == [c["match"] for c in all_rows[engine]["counts"]], (
                        "DuckDB differs"
                    )
            if engine != "sqlite" or args.preview_all_only:
                app.close()
        first = all_rows[engines[0]]
        assert all(
            r["counts"] == first["counts"] and r["by_channel"] == first["by_channel"]
            for r in all_rows.values()
        ), "the engines disagree"
        uptime = os.getloadavg()
        if args.preview_all_only or "sqlite" not in engines:
            _say_all(args, all_rows, duck, uptime)
            return
        app = App.open(work / "notifier.toml")
        loaded, problems = load_rules(rule_files(work / "rules"), app.dictionary, work / "templates")
        rules = list(loaded.values())
        load_s = all_rows["sqlite"]["populate_seconds"]
        per_s, per_auds = timed(lambda: per_rule(app, rules))
        many_s, many_auds = timed(lambda: one_scan(app, rules))
        floor_s, floor_counts = timed(lambda: floor(app, hand))
        with_amounts, problems = load_rules(rule_files(work / "amounts"), app.dictionary, work / "templates")
        assert not problems, problems
        amount_rules = list(with_amounts.values())
        plain_s = amount_s = plain_cpu = amount_cpu = float("inf")
        for _ in range(args.repeat):  # alternating, so both see the same machine load
            wall, cpu, _ = cpu_timed(lambda: one_scan(app, rules))
            plain_s, plain_cpu = min(plain_s, wall), min(plain_cpu, cpu)
            wall, cpu, amount_auds = cpu_timed(lambda: one_scan(app, amount_rules))
            amount_s, amount_cpu = min(amount_s, wall), min(amount_cpu, cpu)
        assert [a.counts for a in amount_auds] == [a.counts for a in many_auds], "amounts changed counts"
        assert all(len(a.amounts) == a.counts["match"] for a in amount_auds), "an amount is missing"
        household = [a for a in amount_auds if a.compiled.rule.notify == "household"]
        group_s, grouped = timed(lambda: [notices(app, a) for a in household])
        app.close()
        assert [(a.counts, a.review_conditions, a.members) for a in many_auds] == [
            (a.counts, a.review_conditions, a.members) for a in per_auds
        ], "evaluate_many disagrees with evaluate"
        matched = [a.counts["match"] for a in per_auds]
        assert (
            matched
            == [len(a.members) for a in per_auds]
            == [n for n, _ in floor_counts]
            == [k for _, k in floor_counts]
        ), "a match count differs from the floor's"
        out = {
            "residents": args.residents,
            "rules": len(rules),
            "populate_seconds": round(load_s, 1),
            "per_rule_seconds": round(per_s, 2),
            "one_scan_seconds": round(many_s, 2),
            "floor_seconds": round(floor_s, 2),
            "ratio_per_rule_to_floor": round(per_s / floor_s, 2),
            "ratio_one_scan_to_floor": round(many_s / floor_s, 2),
            "matched_total": sum(matched),
            "one_scan_plain_seconds": round(plain_s, 2),
            "one_scan_amounts_seconds": round(amount_s, 2),
            "ratio_amounts_to_plain": round(amount_s / plain_s, 3),
            "one_scan_plain_cpu_seconds": round(plain_cpu, 2),
            "one_scan_amounts_cpu_seconds": round(amount_cpu, 2),
            "cpu_ratio_amounts_to_plain": round(amount_cpu / plain_cpu, 3),
            "amount_total_yuan": str(sum(sum(v or 0 for v in a.amounts.values()) for a in amount_auds) / 100),
            "household_rules": len(household),
            "household_residents": sum(a.counts["match"] for a in household),
            "household_notices": sum(len(g) for g in grouped),
            "household_grouping_seconds": round(group_s, 2),
        }
        if args.json:
            print(json.dumps(out))
        _say_all(args, all_rows, duck, uptime)
        if not args.json:
            print(
                f"{args.residents:,} residents, {len(rules)} rules (populated in {load_s:.0f} s); "
                f"matched in total: {out['matched_total']:,}, every count equal to the floor's"
            )
            for label, seconds in (
                (f"engine, per rule (evaluate x {len(rules)})", per_s),
                ("engine, one scan (evaluate_many)", many_s),
                ("hand-written SQL floor (count + ids)", floor_s),
            ):
                print(f"{label:<40} {seconds:7.2f} s   {seconds / floor_s:.2f}x the floor")
            print(
                f"one scan without amounts {plain_s:.2f} s, with amounts {amount_s:.2f} s "
                f"({amount_s / plain_s:.3f}x; best of {args.repeat}); CPU {plain_cpu:.2f} s and "
                f"{amount_cpu:.2f} s ({amount_cpu / plain_cpu:.3f}x); "
                f"total stated {out['amount_total_yuan']} yuan"
            )
            print(
                f"{len(household)} household rules: {out['household_residents']:,} residents -> "
                f"{out['household_notices']:,} notices, grouped in {group_s:.2f} s"
            )
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(work, ignore_errors=True)


def _say_all(
    args: argparse.Namespace,
    rows: dict[str, dict[str, Any]],
    duck: dict[str, Any] | None,
    load: tuple[float, float, float],
) -> None:
    """The `rules preview --all` figures of every engine, and DuckDB's."""
    figures = {
        "preview_all": {
            k: {n: v for n, v in r.items() if n not in ("counts", "by_channel")} for k, r in rows.items()
        },
        "duckdb": {k: v for k, v in duck.items() if k != "counts"}
        if duck
        else "not installed (pip install duckdb)",
        "load_average": [round(x, 2) for x in load],
        "cpus": len(os.sched_getaffinity(0)),
    }
    if args.json:
        print(json.dumps(figures))
        return
    print(
        f"`rules preview --all`, {args.residents:,} residents x {args.rules} rules; "
        f"load average {load[0]:.2f} at the end, {figures['cpus']} CPUs; "
        f"counts and channels equal on {', '.join(rows)}"
    )
    for engine, r in rows.items():
        extra = ""
        if "parallel_scan_planned" in r:
            extra = f"; EXPLAIN plans a parallel scan of residents: {r['parallel_scan_planned']}"
        print(
            f"  {engine:<10} --all {r['split_seconds']:6.2f} s (CPU {r['split_cpu_seconds']:.2f} s), "
            f"in one part {r['one_part_seconds']:.2f} s (CPU {r['one_part_cpu_seconds']:.2f} s); "
            f"hand-written one-scan floor {r['floor_seconds']:.2f} s (CPU {r['floor_cpu_seconds']:.2f} s) "
            f"-> {r['ratio_split_to_floor']:.2f}x; "
            "old path (evaluate_many) "
            f"{r['evaluate_many_seconds']:.2f} s{extra}"
        )
    if duck:
        print(
            f"  duckdb     {duck['seconds']:6.2f} s ({duck['threads']} threads; "
            "the floor's statement, counts equal)"
        )
    else:
        print("  duckdb     not installed (pip install duckdb): no columnar reference")


if __name__ == "__main__":
    main()
