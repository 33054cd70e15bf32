"""Checkpoints: the chain head written outside the database, one JSON line per checkpoint.

Someone who can write to the database can drop the append-only triggers, rewrite events and
recompute every hash after them; the chain then verifies. A checkpoint file kept elsewhere (or
copied off the machine) still holds the old (seq, hash), so `verify` sees the rewrite.

Signing checkpoints with Ed25519 needs the `cryptography` package, which this installation does
not ship; when a signing key is configured we refuse rather than write checkpoints that look
signed to nobody.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from ..app import App
from ..clock import utcnow
from ..errors import ConfigError, InputError, Problem, StateError
from . import log as audit
from .log import Checkpoint, VerifyResult

_HASH = re.compile(r"[0-9a-f]{64}")


def checkpoint_path(app: App) -> Path:
    return app.config.resolve_path(str(app.config.raw["audit"]["checkpoint_file"]))


def read_checkpoints(path: Path) -> list[Checkpoint]:
    """Every checkpoint in the file, in file order; a damaged line is an error, never skipped."""
    if not path.exists():
        return []
    out = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                seq, h = obj["seq"], obj["hash"]
                if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0 or not _HASH.fullmatch(str(h)):
                    raise ValueError
            except (ValueError, KeyError, TypeError):
                raise InputError(f"{path}: checkpoint file is damaged", [Problem(
                    "not a checkpoint: expected a JSON object with seq (integer) and hash (64 hex digits)",
                    file=str(path), line=n)]) from None
            out.append(Checkpoint(seq, str(h), str(obj.get("at", ""))))
    return out


def verify_log(app: App, *, from_checkpoint: bool = False) -> tuple[VerifyResult, Path, int]:
    """Verify the chain against the stored head and every checkpoint; (result, file, checkpoints read).

    `from_checkpoint` starts after the newest checkpoint (the events before it were verified when it
    was taken), so a daily check of a large log reads only what was added since.
    """
    path = checkpoint_path(app)
    cps = read_checkpoints(path)
    start = max(cps, key=lambda c: c.seq) if from_checkpoint and cps else None
    with audit.snapshot(app.engine) as conn:
        return audit.verify(conn, cps, start=start), path, len(cps)


def take_checkpoint(app: App) -> dict[str, Any]:
    """Verify what was added since the last checkpoint, then append the head to the checkpoint file."""
    key_env = str(app.config.raw["audit"].get("signing_key_env") or "")
    if key_env and os.environ.get(key_env):
        raise ConfigError(f"{key_env} is set, but signing checkpoints needs the `cryptography` package, which is not "
                          f"installed; install it or unset {key_env}")
    result, path, _ = verify_log(app, from_checkpoint=True)
    if not result.ok:
        raise StateError(f"audit log is broken at event {result.first_bad} ({result.kind}): {result.reason}; "
                         "no checkpoint written")
    line = {"seq": result.head_seq, "hash": result.head_hash, "at": utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(line, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return line | {"file": str(path), "signed": False}
