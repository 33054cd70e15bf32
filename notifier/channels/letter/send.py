"""Writing each letter as its own page; assembling a run's printable file, PDFs and rosters from them.

Each page is first written as its own files named by delivery id (atomic, so a resend after a
crash replaces them): the HTML page and, for the PDFs, a `.letter` file with the letter's fields;
`close()` assembles the run's printable HTML file and roster, then one PDF per village with its
签收 roster (pdf.py, rendered in worker processes off the event loop), and `open()` assembles any
run whose pages are newer than its file (a process killed before `close`). A page that cannot be
written fails its own delivery; a run that cannot be assembled is logged and tried again later;
neither stops other letters, runs or channels.
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

from ...status import Channel, DeliveryStatus
from ..base import OutboundMessage, Provider, SendResult
from ..files import write_atomic
from .pages import assemble, page
from .pdf import Sender, VillageFiles, assemble_pdfs, letter, letter_file
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
        o = self.options
        self.sender = Sender(o.sender, o.return_address, o.return_postcode, o.phone)

    def _pages(self, run_id: int) -> Path:
        return self.dir / f"run-{run_id}" / "pages"

    async def send(self, message: OutboundMessage) -> SendResult:
        path = self._pages(message.run_id) / f"{message.delivery_id:08d}.html"
        write_atomic(path, page(message), self.name, "letter page")
        if self.options.pdf:
            item = letter(message, self.context.public_url)
            write_atomic(path.with_suffix(".letter"), letter_file(item), self.name, "letter page")
        self.touched.add(message.run_id)
        return SendResult(
            DeliveryStatus.SENT, f"letter:{message.run_id}:{message.delivery_id}", {"page": str(path)}
        )

    async def open(self) -> None:
        for pages in self.dir.glob("run-*/pages"):
            found = _RUN_DIR.fullmatch(pages.parent.name)
            out = pages.parent.with_suffix(".html")
            if found and (not out.exists() or pages.stat().st_mtime_ns > out.stat().st_mtime_ns):
                await asyncio.to_thread(self._assemble_logged, int(found[1]))

    async def close(self) -> None:
        for run_id in sorted(self.touched):
            await asyncio.to_thread(self._assemble_logged, run_id)  # PDFs take seconds per village
        self.touched.clear()

    def _assemble_logged(self, run_id: int) -> None:
        """Assemble one run; a failure is logged, never raised: the deliveries are recorded, the
        pages are kept, and the next `send` tries again (their folder is newer than the file)."""
        try:
            self.assemble(run_id)
        except OSError as exc:
            log.error("letters of run %s not assembled: %s", run_id, exc)
            return
        if self.options.pdf:
            try:
                self.assemble_pdfs(run_id)
            except Exception as exc:  # a PDF that cannot be made must not stop the sender
                log.error("PDF letters of run %s not assembled: %s", run_id, exc.__class__.__name__)

    def assemble(self, run_id: int) -> tuple[Path, Path]:
        """(Re)build the run's printable HTML and roster CSV from its pages, ordered by village."""
        return assemble(self.dir, run_id)

    def assemble_pdfs(self, run_id: int) -> list[VillageFiles]:
        """(Re)build the run's PDFs, one per village with its 签收 roster, in `run-N/pdf/`."""
        run = self.dir / f"run-{run_id}"
        return assemble_pdfs(run / "pages", run / "pdf", run_id, self.sender, self.options.workers)

    def describe(self) -> str:
        return f"letters ({self.dir})"
