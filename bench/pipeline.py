"""Pipeline benchmark: import, run creation, render+dispatch to the outbox, each against a bare
floor measured in the same run on the same machine.

  floor (import)   plain sqlite3 executemany of the same rows into a table of the same width
  floor (create)   plain Jinja2 render of the same SMS template per delivery + plain sqlite3
                   executemany of as many delivery rows and stored-message rows
  floor (send)     one file written per message (messages were rendered at creation); every
                   channel goes to the outbox here (PDF letters: bench/letters.py)

    python bench/pipeline.py --residents 100000 [--keep DIR] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import sqlite3
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import jinja2

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from notifier import runs  # noqa: E402
from notifier.app import App  # noqa: E402
from notifier.channels.registry import providers_for  # noqa: E402
from notifier.delivery.dispatch import Dispatcher  # noqa: E402
from notifier.rendering.filters import FILTERS  # noqa: E402
from notifier.residents.importer import import_residents  # noqa: E402
from notifier.rules.load import find_rule  # noqa: E402
from notifier.samplegen import generate, write_csv  # noqa: E402

BENCH_RULE = """\
id: bench-everyone
item: {title: 2026年农村危房改造补助, domain: rural_housing_repair, department: 县住房和城乡建设局,
       url: https://example.gov.cn/zwgk/2026/wf014, publish: {from: 2026-01-01, until: 2030-12-31},
       disclosure: public}
parameters:
  low_income_line: {unit: 元, reference: bench, values: {2026-01-01: 7440}}
match:
  any:
    - {field: registration, in: [rural, urban]}
    - {field: registration, is_missing: true}
channels: [sms, email, letter]
templates: {sms: housing_repair.sms.j2, email: housing_repair.email.j2, letter: housing_repair.letter.j2}
"""
SMS_TEMPLATE = (REPO / "templates" / "housing_repair.sms.j2").read_text(encoding="utf-8")


def children_cpu() -> float:
    """CPU seconds of this process's finished children (run creation forks one to render)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def floor_insert(db: Path, rows: list[list[str]]) -> float:
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    width = len(rows[0])
    conn.execute(f"CREATE TABLE t ({', '.join(f'c{i} TEXT' for i in range(width))})")
    t0 = time.perf_counter()
    with conn:
        conn.executemany(f"INSERT INTO t VALUES ({', '.join('?' * width)})", rows)
    elapsed = time.perf_counter() - t0
    conn.close()
    return elapsed


def floor_render(n: int) -> tuple[list[str], float]:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters.update(FILTERS)
    tmpl = env.from_string(SMS_TEMPLATE)
    item = {
        "department": "县住房和城乡建设局",
        "url": "https://example.gov.cn/zwgk/2026/wf014",
        "title": "2026年农村危房改造补助",
        "publish_until": date(2030, 12, 31),
    }
    t0 = time.perf_counter()
    bodies = [tmpl.render(resident={"name": "王建国", "township": "城关镇"}, item=item) for _ in range(n)]
    return bodies, time.perf_counter() - t0


def floor_create(db: Path, n: int) -> float:
    bodies, render_s = floor_render(n)
    insert_s = floor_insert(
        db, [[str(i), "r", "sms", "pending", "k", "+8613800000000", "", "0"] for i in range(n)]
    )
    return (
        render_s
        + insert_s
        + floor_insert(
            db.with_suffix(".m.db"),
            [
                [str(i), "r", "sms", "+8613800000000", "王建国", "城关镇", "村", body, "1", "0" * 64]
                for i, body in enumerate(bodies)
            ],
        )
    )


def floor_write(out: Path, n: int) -> float:
    body = floor_render(1)[0][0]
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for i in range(n):
        (out / f"{i:08d}.txt").write_text(body, encoding="utf-8")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--residents", type=int, default=100_000)
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="notifier-bench-"))
    if work.exists():
        shutil.rmtree(work)
    (work / "rules").mkdir(parents=True)
    shutil.copy(REPO / "rules" / "fields.yaml", work / "rules")
    (work / "rules" / "bench-everyone.yaml").write_text(BENCH_RULE, encoding="utf-8")
    shutil.copytree(REPO / "templates", work / "templates")
    (work / "notifier.toml").write_text(
        # letters to the outbox too: this stage measures dispatch, bench/letters.py the PDF letters
        "[quiet_hours]\nenabled = false\n[sending]\nbatch_size = 2000\n"
        '[channels.letter]\nproviders = ["outbox"]\n',
        encoding="utf-8",
    )
    n = args.residents
    results: dict[str, dict[str, float]] = {}

    t0 = time.perf_counter()
    sample = generate(n, invalid=0)
    write_csv(work / "residents.csv", sample.residents_header, sample.residents_rows)
    gen_s = time.perf_counter() - t0

    app = App.open(work / "notifier.toml")
    t0 = time.perf_counter()
    report = import_residents(app, work / "residents.csv")
    imp_s = time.perf_counter() - t0
    floor_s = floor_insert(work / "floor.db", sample.residents_rows)
    results["import"] = {
        "rows": report.imported,
        "seconds": imp_s,
        "per_second": rate(report.imported, imp_s),
        "floor_per_second": rate(n, floor_s),
        "ratio_to_floor": floor_s / imp_s,
    }

    rule = find_rule("bench-everyone", app.config.rules_dir, app.dictionary, app.config.templates_dir)
    t0, c0, k0 = time.perf_counter(), time.process_time(), children_cpu()
    created = runs.create_run(app, rule, date(2026, 4, 1), "bench")
    create_s, create_cpu = time.perf_counter() - t0, time.process_time() - c0
    create_child_cpu = children_cpu() - k0  # the process rendering half the messages (messages.py)
    floor_s = floor_create(work / "floor2.db", created.audience)
    results["create"] = {
        "deliveries": created.audience,
        "seconds": create_s,
        "per_second": rate(created.audience, create_s),
        "cpu_seconds": create_cpu + create_child_cpu,
        "child_cpu_seconds": create_child_cpu,
        "floor_per_second": rate(created.audience, floor_s),
        "ratio_to_floor": floor_s / create_s,
    }
    runs.approve_run(app, created.run, "a1")
    runs.approve_run(app, created.run, "a2")

    dispatcher = Dispatcher(app, providers_for(app.config))
    t0, c0 = time.perf_counter(), time.process_time()
    sent = asyncio.run(dispatcher.run(created.run))
    send_s, send_cpu = time.perf_counter() - t0, time.process_time() - c0
    floor_s = floor_write(work / "floor-outbox", sent.sent)
    results["send"] = {
        "messages": sent.sent,
        "seconds": send_s,
        "per_second": rate(sent.sent, send_s),
        "cpu_seconds": send_cpu,
        "floor_per_second": rate(sent.sent, floor_s),
        "ratio_to_floor": floor_s / send_s,
        "by_channel": sent.by_channel,
    }  # type: ignore[dict-item]
    app.close()
    out = {"residents": n, "generate_seconds": round(gen_s, 2), **results}
    if args.json:
        print(json.dumps(out, ensure_ascii=False))
    else:
        print(f"residents: {n:,} (generated in {gen_s:.1f} s)")
        for stage, r in results.items():
            count = next(v for k, v in r.items() if k in ("rows", "deliveries", "messages"))
            print(
                f"{stage:7s} {count:>9,} in {r['seconds']:6.2f} s = {r['per_second']:>9,.0f}/s   "
                f"floor {r['floor_per_second']:>9,.0f}/s   ratio {r['ratio_to_floor']:.2f}"
                + (f"   cpu {r['cpu_seconds']:.2f} s" if "cpu_seconds" in r else "")
                + (f" (child {r['child_cpu_seconds']:.2f} s)" if "child_cpu_seconds" in r else "")
            )
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
