"""Checkpoints: the chain head written outside the database, one JSON line per checkpoint.

Someone who can write to the database can drop the append-only triggers, rewrite events and
recompute every hash after them; the chain then verifies. A checkpoint file kept elsewhere (or
copied off the machine) still holds the old (seq, hash), so `verify` sees the rewrite.

Signed checkpoints: when the environment variable named by `[audit] signing_key_env` holds an
Ed25519 private key (32 bytes, hex or base64), each line also carries `sig` (base64 Ed25519
signature of the canonical JSON of {seq, hash, at}) and `public_key` (hex). `verify` checks every
signed line: against `[audit] verify_public_key` when configured (then unsigned lines are refused
too: whoever edits the file could otherwise drop the signature), else against the key stored on
the line, which shows the line is intact but not who wrote it. A line whose signature fails is a
problem of kind "checkpoint_signature" and is not trusted for the chain check.

Deleting or truncating the file would silently drop that protection, so the database remembers
the most the file was seen holding (audit_checkpoint_state: lines and highest event, raised by
every checkpoint and every verify that reads a longer file). A file that is missing or holds
less than that fails with kind "checkpoint_file" until it is restored from its copy.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ..app import App
from ..clock import utcnow
from ..errors import ConfigError, InputError, Problem, StateError
from ..storage.schema import audit_checkpoint_state
from . import log as audit
from .log import Checkpoint, VerifyResult

_HASH = re.compile(r"[0-9a-f]{64}")
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")
SIGNATURE_PROBLEM = "checkpoint_signature"
FILE_PROBLEM = "checkpoint_file"


def checkpoint_path(app: App) -> Path:
    return app.config.resolve_path(app.config.audit.checkpoint_file)


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
                if (
                    not isinstance(seq, int)
                    or isinstance(seq, bool)
                    or seq < 0
                    or not _HASH.fullmatch(str(h))
                ):
                    raise ValueError
                sig, pub = obj.get("sig", ""), obj.get("public_key", "")
                if not isinstance(sig, str) or not isinstance(pub, str):
                    raise ValueError
            except (ValueError, KeyError, TypeError, AttributeError):
                raise InputError(
                    f"{path}: checkpoint file is damaged",
                    [
                        Problem(
                            "not a checkpoint: expected a JSON object with seq (integer) and hash "
                            "(64 hex digits)",
                            file=str(path),
                            line=n,
                        )
                    ],
                ) from None
            out.append(Checkpoint(seq, str(h), str(obj.get("at", "")), sig, pub, n))
    return out


def signed_bytes(seq: int, hash_: str, at: str) -> bytes:
    """What a checkpoint signature covers: the canonical JSON of {seq, hash, at}."""
    return audit.canonical_json({"seq": seq, "hash": hash_, "at": at}).encode("utf-8")


def _key_bytes(text: str) -> bytes | None:
    """32 key bytes from 64 hex digits or base64 (standard or URL-safe, padding optional); None otherwise."""
    text = text.strip()
    if _HEX_KEY.fullmatch(text):
        return bytes.fromhex(text)
    try:
        raw = base64.b64decode(
            text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4), validate=True
        )
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 32 else None


def signing_key(app: App) -> Ed25519PrivateKey | None:
    """The private key from the environment variable named by `[audit] signing_key_env`, if set.

    A value that is not a 32-byte key is a ConfigError that names the variable, never the value."""
    env = app.config.audit.signing_key_env
    value = os.environ.get(env, "") if env else ""
    if not value.strip():
        return None
    raw = _key_bytes(value)
    if raw is None:
        raise ConfigError(
            f"{env} does not hold an Ed25519 private key: expected 32 bytes written as 64 hex digits "
            f"or as base64 (the value is not shown); fix it or unset {env}"
        )
    return Ed25519PrivateKey.from_private_bytes(raw)


def verify_key(app: App) -> Ed25519PublicKey | None:
    """`[audit] verify_public_key`, if configured."""
    value = app.config.audit.verify_public_key.strip()
    if not value:
        return None
    raw = _key_bytes(value)
    if raw is None:
        raise ConfigError(
            f"{app.config.where()}: [audit] verify_public_key must be an Ed25519 public key: "
            "32 bytes written as 64 hex digits or as base64"
        )
    return Ed25519PublicKey.from_public_bytes(raw)


def public_hex(key: Ed25519PublicKey) -> str:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def check_signatures(
    path: Path, cps: list[Checkpoint], key: Ed25519PublicKey | None
) -> tuple[list[Checkpoint], list[dict[str, Any]]]:
    """(checkpoints to trust, signature problems). With `key`, every line must be signed by it;
    without, each signed line must verify with the public key stored on it."""
    good: list[Checkpoint] = []
    problems: list[dict[str, Any]] = []

    def problem(cp: Checkpoint, message: str) -> None:
        problems.append(
            {
                "kind": SIGNATURE_PROBLEM,
                "file": str(path),
                "line": cp.line,
                "seq": cp.seq,
                "message": f"checkpoint at line {cp.line} (event {cp.seq}): {message}",
            }
        )

    for cp in cps:
        if not cp.sig and not cp.public_key:
            if key is not None:
                problem(cp, "not signed, but [audit] verify_public_key is set")
            else:
                good.append(cp)
            continue
        line_key = None
        if _HEX_KEY.fullmatch(cp.public_key):
            line_key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(cp.public_key))
        elif key is None:
            problem(cp, "public_key is not 64 hex digits")
            continue
        try:
            sig = base64.b64decode(cp.sig.encode("ascii"), validate=True)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            sig = b""
        if len(sig) != 64:
            problem(cp, "sig is not a base64 Ed25519 signature (64 bytes)")
            continue
        data = signed_bytes(cp.seq, cp.hash, cp.at)
        if _valid(key or line_key, sig, data):  # type: ignore[arg-type]
            good.append(cp)
        elif key is not None and line_key is not None and _valid(line_key, sig, data):
            problem(cp, f"signed with another key ({cp.public_key[:16]}…), not [audit] verify_public_key")
        elif key is not None:
            problem(
                cp,
                "bad signature: seq, hash or at was changed after signing, or it was signed with another "
                "key (checked with [audit] verify_public_key)",
            )
        else:
            problem(
                cp,
                "bad signature: seq, hash or at was changed after signing (checked with the public_key "
                "stored on the line)",
            )
    return good, problems


def _valid(key: Ed25519PublicKey, sig: bytes, data: bytes) -> bool:
    try:
        key.verify(sig, data)
    except InvalidSignature:
        return False
    return True


def verify_log(app: App, *, from_checkpoint: bool = False) -> tuple[VerifyResult, Path, dict[str, Any]]:
    """Verify the checkpoint signatures, then the chain against the stored head and every trusted
    checkpoint; (result, file, summary of the checkpoint file for the JSON report).

    `from_checkpoint` starts after the newest trusted checkpoint (the events before it were verified
    when it was taken), so a daily check of a large log reads only what was added since.
    """
    path = checkpoint_path(app)
    cps = read_checkpoints(path)
    key = verify_key(app)
    good, problems = check_signatures(path, cps, key)
    start = max(good, key=lambda c: c.seq) if from_checkpoint and good else None
    with audit.snapshot(app.engine) as conn:
        result = audit.verify(conn, good, start=start)
        seen = conn.execute(
            sa.select(audit_checkpoint_state).where(audit_checkpoint_state.c.id == 1)
        ).one_or_none()
    if problems:
        result = dataclasses.replace(result, problems=tuple(problems))
        if result.ok:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            result = dataclasses.replace(
                result, ok=False, kind=SIGNATURE_PROBLEM, reason=f"{path}: {problems[0]['message']}{more}"
            )
    top = max(cps, key=lambda c: c.seq, default=None)
    shrunk = _shrunk(path, cps, seen)
    if shrunk and result.ok:
        result = dataclasses.replace(result, ok=False, kind=FILE_PROBLEM, reason=shrunk)
    elif shrunk:
        result = dataclasses.replace(result, reason=f"{result.reason}; and {shrunk}")
    elif (
        result.ok
        and top is not None
        and seen is not None
        and (len(cps) > seen.checkpoints or top.seq > seen.seq)
    ):
        record_seen(app, path, len(cps), top)
    summary = {
        "file": str(path),
        "count": len(cps),
        "signed": sum(1 for c in cps if c.sig or c.public_key),
        "bad_signatures": len(problems),
        "signatures_checked_with": "verify_public_key" if key is not None else "line_public_key",
        "verify_public_key": public_hex(key) if key is not None else None,
        "last": {"seq": top.seq, "at": top.at} if top is not None else None,
    }
    return result, path, summary


@dataclasses.dataclass(frozen=True)
class Verification:
    """`audit verify`: the chain check and what the checkpoint file held."""

    result: VerifyResult
    checkpoints: dict[str, Any]  # the summary verify_log returns: file, count, signed, bad_signatures, ...

    @property
    def exit_code(self) -> int:
        return 0 if self.result.ok else 1

    def as_json(self) -> dict[str, Any]:
        return self.result.as_json() | {
            "checkpoints": self.checkpoints | {"matched": self.result.checkpoints_matched}
        }


def verification(app: App, *, from_checkpoint: bool = False) -> Verification:
    """verify_log as one result, for reports."""
    result, _, summary = verify_log(app, from_checkpoint=from_checkpoint)
    return Verification(result, summary)


def _shrunk(path: Path, cps: list[Checkpoint], seen: sa.Row[Any] | None) -> str | None:
    """Why the checkpoint file holds less than it was last seen holding (None if it does not)."""
    if seen is None or (seen.checkpoints == 0 and seen.seq == 0):
        return None
    was = f"{seen.checkpoints} checkpoint(s) up to event {seen.seq}" + (
        f" (as {seen.file})" if seen.file and seen.file != str(path) else ""
    )
    restore = "restore it from its copy kept off this machine"
    if not path.exists():
        return f"checkpoint file {path} is missing; it held {was}: {restore}"
    top = max((c.seq for c in cps), default=0)
    if len(cps) < seen.checkpoints or top < seen.seq:
        return (
            f"checkpoint file {path} holds {len(cps)} checkpoint(s) up to event {top}, but held {was} when "
            f"last seen: it was truncated or replaced; {restore}"
        )
    return None


def record_seen(app: App, path: Path, count: int, top: Checkpoint) -> None:
    """Raise the remembered high-water mark of the checkpoint file (never lower it)."""
    t = audit_checkpoint_state
    with app.engine.begin() as conn:
        conn.execute(
            t.update()
            .where(t.c.id == 1, t.c.checkpoints <= count, t.c.seq <= top.seq)
            .values(file=str(path), checkpoints=count, seq=top.seq, hash=top.hash, updated_at=utcnow())
        )


def take_checkpoint(app: App) -> dict[str, Any]:
    """Verify what was added since the last checkpoint, then append the head to the checkpoint file,
    signed when a signing key is configured."""
    key = signing_key(app)  # a bad key fails before anything is read or written
    vkey = verify_key(app)
    if key is not None and vkey is not None and public_hex(key.public_key()) != public_hex(vkey):
        env = app.config.audit.signing_key_env
        raise ConfigError(
            f"the key in {env} does not belong to [audit] verify_public_key ({public_hex(vkey)}): "
            f"checkpoints signed with it would not verify; no checkpoint written"
        )
    result, path, summary = verify_log(app, from_checkpoint=True)
    if not result.ok:
        if result.kind in (SIGNATURE_PROBLEM, FILE_PROBLEM):
            raise StateError(f"{result.reason}; no checkpoint written")
        raise StateError(
            f"audit log is broken at event {result.first_bad} ({result.kind}): {result.reason}; "
            "no checkpoint written"
        )
    line: dict[str, Any] = {
        "seq": result.head_seq,
        "hash": result.head_hash,
        "at": utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if key is not None:
        line["sig"] = base64.b64encode(key.sign(signed_bytes(line["seq"], line["hash"], line["at"]))).decode(
            "ascii"
        )
        line["public_key"] = public_hex(key.public_key())
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(line, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())
    record_seen(app, path, summary["count"] + 1, Checkpoint(line["seq"], line["hash"], line["at"]))
    return line | {"file": str(path), "signed": key is not None}
