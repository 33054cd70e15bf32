"""Crash and fault benchmark (issue 4's check, at full scale): a campaign of --residents SMS is
sent by `notifier send` subprocesses killed with SIGKILL --kills times at random moments, against
the local Twilio-compatible server answering --faults % of sends with 429, 500 or too late for
the client (1.5 s against a 1 s timeout) and --read-faults % of lookups with 500; then one
`send --until-idle` finishes. Prints the time taken and whether every resident got exactly one
SMS and every delivery ended `sent`.

    python bench/crash.py [--residents 5000] [--kills 8] [--faults 30] [--read-faults 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.crash import kill_campaign  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--residents", type=int, default=5000)
    ap.add_argument("--kills", type=int, default=8)
    ap.add_argument("--faults", type=float, default=30)
    ap.add_argument("--read-faults", type=float, default=20)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="notifier-crash-bench-"))
    try:
        out = kill_campaign(
            work,
            f"sqlite:///{work / 'notifier.db'}",
            args.residents,
            kills=args.kills,
            fault_percent=args.faults,
            read_fault_percent=args.read_faults,
            seed=7,
            batch_size=args.batch_size,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    twice = sum(1 for n in out.accepted.values() if n > 1)
    missing = sum(1 for p in out.phones if out.accepted[p] == 0)
    result = {
        "residents": args.residents,
        "kills": out.kills,
        "seconds": round(out.seconds, 1),
        "final_exit": out.final.returncode,
        "statuses": dict(out.statuses),
        "received_twice": twice,
        "received_none": missing,
        "sids_match": out.sids_match,
        "settled_after_lost_answer_or_kill": out.moves[("unknown", "sent")]
        + out.moves[("sending", "pending")],
        "exactly_once": twice == 0 and missing == 0 and out.statuses == {"sent": args.residents},
    }
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:36} {v}")
    return 0 if result["exactly_once"] and out.final.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
