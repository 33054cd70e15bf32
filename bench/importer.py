"""Import benchmark: a generated register as CSV and as XLSX, against a floor measured in the
same run on the same machine.

  floor            plain sqlite3 executemany of the raw strings into a table of the same width
  csv              `import_residents` as configured (`Pooling` default: one worker on 2 cores,
                   reading and parsing pieces of the CSV text)
  csv in-process   the same with the pool off
  csv N worker(s)  N worker processes reading and parsing the pieces (their CPU shown)
  xlsx             `import_residents` of the same rows as XLSX (python-calamine reader; `Pooling`
                   default: one forked worker reading and parsing the sheet this process loaded)
  xlsx in-process  the same with the pool off
  xlsx 1 worker    the forked worker whatever the load average (the default gate aside)
  read xlsx        rows only (no parsing, no database), openpyxl read-only vs python-calamine
                   (+ the conversion to openpyxl's types)

Wall time, this process's CPU time and its workers' CPU time are printed, with the 1-minute load
average before each stage: on a shared machine it says how far wall time is from what the code
costs (a pooled stage needs two idle cores, the in-process one a single core).

    python bench/importer.py --residents 100000 [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.pipeline import floor_insert  # noqa: E402
from notifier.app import App  # noqa: E402
from notifier.fields import BUILTIN_FIELDS  # noqa: E402
from notifier.residents import readers  # noqa: E402
from notifier.residents.header import HeaderMatcher  # noqa: E402
from notifier.residents.importer import import_residents  # noqa: E402
from notifier.residents.pool import IN_PROCESS, Pooling  # noqa: E402
from notifier.samplegen import generate, write_csv, write_xlsx  # noqa: E402


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def children_cpu() -> float:
    """CPU seconds of ended child processes (the pool's workers, once the import has shut them down)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def fresh_app(work: Path, name: str) -> App:
    folder = work / name
    (folder / "rules").mkdir(parents=True)
    shutil.copy(REPO / "rules" / "fields.yaml", folder / "rules")
    (folder / "notifier.toml").write_text(
        f'[database]\nurl = "sqlite:///{folder / "n.db"}"\n[quiet_hours]\nenabled = false\n', encoding="utf-8"
    )
    return App.open(folder / "notifier.toml")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--residents", type=int, default=100_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    n = args.residents
    work = Path(tempfile.mkdtemp(prefix="notifier-bench-import-"))
    load = os.getloadavg()[0]
    sample = generate(n, invalid=0)
    write_csv(work / "r.csv", sample.residents_header, sample.residents_rows)
    write_xlsx(work / "r.xlsx", sample.residents_header, sample.residents_rows)
    floor_s = floor_insert(work / "floor.db", sample.residents_rows)
    results: dict[str, dict[str, float]] = {"floor": {"seconds": floor_s, "per_second": n / floor_s}}

    def run(stage: str, path: Path, **kw: Any) -> None:
        app = fresh_app(work, stage)
        load = os.getloadavg()[0]
        before = children_cpu()
        try:
            report, wall, cpu = timed(lambda: import_residents(app, path, **kw))
        finally:
            app.close()
        workers = children_cpu() - before
        assert report.imported == n and not report.rejected, (stage, report.imported, report.rejected)
        results[stage] = {
            "seconds": wall,
            "cpu_seconds_main": cpu,
            "cpu_seconds_workers": workers,
            "per_second": n / wall,
            "ratio_to_floor": floor_s / wall,
            "load_average": load,
        }

    run("csv", work / "r.csv")
    run("csv in-process", work / "r.csv", pooling=IN_PROCESS)
    run("csv 1 worker", work / "r.csv", pooling=Pooling(workers=1, min_workers=1, max_load=math.inf))
    run("csv 2 workers", work / "r.csv", pooling=Pooling(workers=2, min_workers=1, max_load=math.inf))
    run("xlsx", work / "r.xlsx")
    run("xlsx in-process", work / "r.xlsx", pooling=IN_PROCESS)
    run("xlsx 1 worker", work / "r.xlsx", pooling=Pooling(max_load=math.inf))
    matcher, xlsx = HeaderMatcher(dict(BUILTIN_FIELDS)), work / "r.xlsx"
    for reader in ("openpyxl", "calamine"):
        load = os.getloadavg()[0]
        rows, wall, cpu = timed(
            lambda r=reader: sum(1 for _ in readers.read_xlsx(xlsx, matcher, reader=r).rows)
        )
        assert rows == n
        results[f"read xlsx {reader}"] = {
            "seconds": wall,
            "cpu_seconds_main": cpu,
            "per_second": n / wall,
            "load_average": load,
        }
    shutil.rmtree(work, ignore_errors=True)
    end = os.getloadavg()[0]
    out = {"residents": n, "load_average": [load, end], "cores": os.cpu_count(), **results}
    if args.json:
        print(json.dumps(out, ensure_ascii=False))
        return
    print(f"residents: {n:,}  load average {load:.1f} at start, {end:.1f} at the end; {os.cpu_count()} cores")
    for stage, r in results.items():
        ratio = f"ratio {r['ratio_to_floor']:.2f}" if "ratio_to_floor" in r else ""
        cpu = f"(cpu here {r['cpu_seconds_main']:5.2f} s" if "cpu_seconds_main" in r else ""
        if cpu:
            cpu += f", workers {r['cpu_seconds_workers']:5.2f} s)" if r.get("cpu_seconds_workers") else ")"
        load = f"load {r['load_average']:.1f}" if "load_average" in r else ""
        rate = f"{r['seconds']:6.2f} s = {r['per_second']:>9,.0f} rows/s"
        print(f"{stage:20s} {rate}  {cpu:40s} {ratio:10s} {load}")


if __name__ == "__main__":
    main()
