"""Writing one message file for the file-based providers (outbox, letter pages).

Atomic (a temporary file, then a rename), so a crash never leaves half a message and a resend
after a crash replaces the file instead of adding a second one. A failure is a ProviderError:
transient when the disk may have room again later, permanent otherwise (a missing permission, a
path that is not a folder), so only that delivery fails and no other channel or run stops.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from ..errors import ProviderError

_RETRY_HELPS = frozenset({errno.ENOSPC, errno.EDQUOT})


def write_atomic(path: Path, text: str, provider: str, what: str = "file") -> None:
    """Write `text` to `path` (making its folder), or raise the ProviderError saying why not."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise ProviderError.classify(
            exc.errno in _RETRY_HELPS,
            f"cannot write the {what} {path}: {exc.strerror or exc}",
            provider,
            code="write",
        ) from None
