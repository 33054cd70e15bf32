"""Roster files between upload and confirmation: one private folder per upload, found by an opaque
token that only the account and the browser session that uploaded it can use, gone after an hour.

`[console] upload_dir` (0700) holds `incoming-*` folders while a file is received and, once
sealed, one folder per upload named by the SHA-256 of its token (the token itself is stored
nowhere), holding the file under its own name (the audit event names it, as the CLI's does)
and `upload.json`. A confirmation claims the folder by renaming it, so two confirmations of one
token import the file once. `sweep` removes whatever is older than the time to live.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

TTL = 3600.0
META = "upload.json"
CLAIMED = ".claimed"
INCOMING = "incoming-"


@dataclass(frozen=True)
class Upload:
    token: str
    folder: Path
    file: Path
    account: int
    created: float  # time.time() of the upload
    size: int

    @property
    def name(self) -> str:
        return self.file.name


def _key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class UploadStore:
    def __init__(self, root: Path, ttl: float = TTL, clock: Callable[[], float] = time.time) -> None:
        self.root, self.ttl, self.clock = root, ttl, clock

    def target(self, name: str) -> Path:
        """Where a file called `name` is received: a new private folder of its own."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.root.chmod(0o700)
        return Path(tempfile.mkdtemp(prefix=INCOMING, dir=self.root)) / name  # mkdtemp: mode 0700

    def seal(self, file: Path, account: int, session: str) -> Upload:
        """Keep a received file for `account` in the browser session identified by `session` (a
        secret of that session); returns the upload with its new token."""
        token = secrets.token_urlsafe(24)
        created = self.clock()
        meta = {"account": account, "session": _key(session), "created": created, "name": file.name}
        fd = os.open(file.parent / META, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(meta, f)
        size = file.stat().st_size
        folder = self.root / _key(token)
        file.parent.rename(folder)
        return Upload(token, folder, folder / file.name, account, created, size)

    def find(self, token: str, account: int, session: str) -> Upload | None:
        """The sealed upload of `token` if it belongs to this account and session and is not expired."""
        if not token or len(token) > 64:
            return None
        folder = self.root / _key(token)
        meta = _meta(folder)
        if meta is None or meta.get("account") != account:
            return None
        if not hmac.compare_digest(str(meta.get("session", "")), _key(session)):
            return None
        created = float(meta.get("created", 0))
        file = folder / str(meta.get("name", ""))
        if self.clock() - created > self.ttl or not file.is_file():
            self.discard(folder)
            return None
        return Upload(token, folder, file, account, created, file.stat().st_size)

    def claim(self, upload: Upload) -> Upload | None:
        """Take the upload for importing (None if another request took it, or it was removed)."""
        claimed = upload.folder.with_name(upload.folder.name + CLAIMED)
        try:
            upload.folder.rename(claimed)
        except FileNotFoundError:
            return None
        os.utime(claimed)  # the sweep spares a claimed folder for a time to live from now
        return replace(upload, folder=claimed, file=claimed / upload.name)

    def release(self, claimed: Upload) -> None:
        """Give a claimed upload back (its import failed and may be tried again)."""
        claimed.folder.rename(self.root / _key(claimed.token))

    def discard(self, folder: Path) -> None:
        if folder.parent == self.root:
            shutil.rmtree(folder, ignore_errors=True)

    def sweep(self) -> int:
        """Remove uploads older than the time to live; how many were removed."""
        if not self.root.is_dir():
            return 0
        now, removed = self.clock(), 0
        for folder in self.root.iterdir():
            meta = None if folder.name.endswith(CLAIMED) else _meta(folder)
            try:
                born = float(meta["created"]) if meta is not None else folder.stat().st_mtime
            except (OSError, TypeError, ValueError, KeyError):
                continue
            if now - born > self.ttl:
                self.discard(folder)
                removed += 1
        return removed


def _meta(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
