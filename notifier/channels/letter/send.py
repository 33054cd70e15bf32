"""Writing each letter as its own page; assembling a run's printable file and roster from them.

Each page is first written as its own file named by delivery id (atomic, so a resend after a
crash replaces it); `close()` assembles the run's printable file and roster from the pages, and
`open()` assembles any run whose pages are newer than its file (a process killed before `close`).
A page that cannot be written fails its own delivery; a run that cannot be assembled is logged
and tried again later; neither stops other letters, runs or channels.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from ...status import Channel, DeliveryStatus
from ..base import OutboundMessage, Provider, SendResult
from ..files import write_atomic
from .pages import assemble, page
from .settings import LetterSettings

log = logging.getLogger("notifier.letter")
_RUN_DIR = re.compile(r"run-(\d+)")


class LetterProvider(Provider):
    kind = "letter"
    idempotent = True
    channels = frozenset({Channel.LETTER})
    settings_class = LetterSettings
    options: LetterSettings

    def configure(self) -> None:
        self.dir = self.context.path(self.options.dir)
        self.touched: set[int] = set()

    def _pages(self, run_id: int) -> Path:
        return self.dir / f"run-{run_id}" / "pages"

    async def send(self, message: OutboundMessage) -> SendResult:
        path = self._pages(message.run_id) / f"{message.delivery_id:08d}.html"
        write_atomic(path, page(message), self.name, "letter page")
        self.touched.add(message.run_id)
        return SendResult(
            DeliveryStatus.SENT, f"letter:{message.run_id}:{message.delivery_id}", {"page": str(path)}
        )

    async def open(self) -> None:
        for pages in self.dir.glob("run-*/pages"):
            found = _RUN_DIR.fullmatch(pages.parent.name)
            out = pages.parent.with_suffix(".html")
            if found and (not out.exists() or pages.stat().st_mtime_ns > out.stat().st_mtime_ns):
                self._assemble_logged(int(found[1]))

    async def close(self) -> None:
        for run_id in sorted(self.touched):
            self._assemble_logged(run_id)
        self.touched.clear()

    def _assemble_logged(self, run_id: int) -> None:
        """Assemble one run; a failure is logged, never raised: the deliveries are recorded, the
        pages are kept, and the next `send` tries again (their folder is newer than the file)."""
        try:
            self.assemble(run_id)
        except OSError as exc:
            log.error("letters of run %s not assembled: %s", run_id, exc)

    def assemble(self, run_id: int) -> tuple[Path, Path]:
        """(Re)build the run's printable HTML and roster CSV from its pages, ordered by village."""
        return assemble(self.dir, run_id)

    def describe(self) -> str:
        return f"letters ({self.dir})"
