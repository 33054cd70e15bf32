"""Runs: a frozen audience (one delivery row per resident x channel), its approvals and state.

create.py    freeze the audience, render and store the messages, snapshot the rule
snapshot.py  RunSnapshot: what a run froze, typed, with its publication-window gate
review.py    approve (level by level) and cancel
read.py      list, show, the stored messages and each recipient's status (masked), the rule diff
"""

from .create import RunCreated, create_run, notice_key, window_problem
from .read import list_runs, rule_diff, run_deliveries, run_messages_page, show_run
from .review import approve_run, cancel_run, load_run, mark_approved
from .snapshot import Gate, GateState, PublicationWindow, RunSnapshot

__all__ = [
    "Gate",
    "GateState",
    "PublicationWindow",
    "RunCreated",
    "RunSnapshot",
    "approve_run",
    "cancel_run",
    "create_run",
    "list_runs",
    "load_run",
    "mark_approved",
    "notice_key",
    "rule_diff",
    "run_deliveries",
    "run_messages_page",
    "show_run",
    "window_problem",
]
