"""Review-queue benchmark: N generated residents (default 200,000), farm-subsidy-2026, a few % of
them lacking 户籍类型 or 承包耕地面积 (or both).

Times `rules review` (the streamed queue with counts, 200 residents listed) and the fill-in sheet
(`-o`), and reports the peak of Python allocations meanwhile (tracemalloc, which slows both), which
should not grow with the queue. The script fails if the queue's size differs from the audience
scan's review count.

    python bench/review.py [--residents 200000] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
import tracemalloc
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from notifier.app import App  # noqa: E402
from notifier.audience import evaluate  # noqa: E402
from notifier.rules.load import find_rule  # noqa: E402
from notifier.rules.reviewqueue import review_queue  # noqa: E402
from notifier.rules.reviewsheet import write_sheet  # noqa: E402
from notifier.storage.bulk import executemany  # noqa: E402

ON = date(2026, 4, 1)


def populate(app: App, n: int, rng: random.Random) -> None:
    now = datetime.now(timezone.utc)
    towns = ["城关镇", "柳林镇", "河口乡", "石桥乡", "东岭镇"]
    batch = []
    with app.engine.begin() as conn:
        for i in range(n):
            batch.append(
                {
                    "resident_id": f"R{i:07d}",
                    "name": "张三丰",
                    "township": rng.choice(towns),
                    "village": f"{i % 37}村",
                    "created_at": now,
                    "updated_at": now,
                    "f_registration": None
                    if rng.random() < 0.04
                    else rng.choice(["rural", "rural", "urban"]),
                    "f_farmland_mu": None if rng.random() < 0.04 else Decimal(rng.randint(0, 150)) / 10,
                }
            )
            if len(batch) == 20000:
                executemany(conn, app.residents.insert(), batch)
                batch = []
        executemany(conn, app.residents.insert(), batch)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--residents", type=int, default=200_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="notifier-review-bench-"))
    try:
        shutil.copytree(REPO / "rules", work / "rules")
        shutil.copytree(REPO / "templates", work / "templates")
        (work / "notifier.toml").write_text("", encoding="utf-8")
        app = App.open(work / "notifier.toml")
        populate(app, args.residents, random.Random(7))
        rule = find_rule("farm-subsidy-2026", app.config.rules_dir, app.dictionary, app.config.templates_dir)
        tracemalloc.start()
        t0 = time.perf_counter()
        queue = review_queue(app, rule, ON, limit=200)
        queue_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        written = write_sheet(app, rule, ON, work / "sheet.xlsx")
        sheet_s = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        review = evaluate(app, rule, ON, members=False).counts["review"]
        app.close()
        assert queue.total == written.residents == review, (queue.total, written.residents, review)
        out = {
            "residents": args.residents,
            "in_review": queue.total,
            "queue_seconds": round(queue_s, 2),
            "sheet_seconds": round(sheet_s, 2),
            "sheet_bytes": (work / "sheet.xlsx").stat().st_size,
            "peak_python_mb": round(peak / 2**20, 1),  # allocations while the queue and sheet ran
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:>20}: {v}")


if __name__ == "__main__":
    main()
