"""`letter`: print-ready letters, one HTML file per run (one page per resident) and a CSV
roster for the village committee that hands them out.

Each page is first written as its own file named by delivery id (atomic, so a resend after a
crash replaces it); `close()` assembles the run's printable file and roster from the pages, and
`open()` assembles any run whose pages are newer than its file (a process killed before `close`).
"""
from __future__ import annotations

import csv
import html
import os
import re
from pathlib import Path

from ..cellsafe import safe_row
from ..status import Channel, DeliveryStatus
from .base import OutboundMessage, Provider, SendResult

PAGE_CSS = """@page { size: A4; margin: 25mm 20mm; }
body { font-family: "SimSun", "Songti SC", "Noto Serif CJK SC", serif; font-size: 14pt; line-height: 1.8; }
.letter { page-break-after: always; break-after: page; }
.letter:last-child { page-break-after: auto; break-after: auto; }
.address { font-size: 11pt; margin-bottom: 2em; } .sign { text-align: right; margin-top: 3em; }
.ref { font-size: 9pt; color: #555; margin-top: 2em; }"""
_PAGE_FILE = re.compile(r"(\d+)\.html")


class LetterProvider(Provider):
    kind = "letter"
    idempotent = True
    channels = frozenset({Channel.LETTER})

    def __init__(self, name: str, settings: dict, base_dir: Path) -> None:  # type: ignore[type-arg]
        super().__init__(name, settings)
        d = Path(settings.get("dir", "letters"))
        self.dir = d if d.is_absolute() else base_dir / d
        self.touched: set[int] = set()

    def _pages(self, run_id: int) -> Path:
        return self.dir / f"run-{run_id}" / "pages"

    async def send(self, message: OutboundMessage) -> SendResult:
        pages = self._pages(message.run_id)
        pages.mkdir(parents=True, exist_ok=True)
        m = message.meta
        page = (f'<section class="letter" id="d{message.delivery_id}">\n'
                f'<div class="address">{html.escape(message.recipient)}<br>{html.escape(message.recipient_name)} 收</div>\n'
                f"{message.body}\n"
                f'<div class="ref">投递编号 {message.delivery_id} · 居民编号 {html.escape(message.resident_id)}</div>\n</section>\n')
        row = [message.delivery_id, message.resident_id, message.recipient_name, m.get("township", ""), m.get("village", ""),
               message.recipient, m.get("title", "")]
        path = pages / f"{message.delivery_id:08d}.html"
        tmp = path.with_suffix(".tmp")
        tmp.write_text("<!--" + "\t".join(str(x).replace("\t", " ").replace("--", "－") for x in row) + "-->\n" + page,
                       encoding="utf-8")
        os.replace(tmp, path)
        self.touched.add(message.run_id)
        return SendResult(DeliveryStatus.SENT, f"letter:{message.run_id}:{message.delivery_id}", {"page": str(path)})

    async def open(self) -> None:
        for pages in self.dir.glob("run-*/pages"):
            run_id = int(pages.parent.name[4:]) if pages.parent.name[4:].isdigit() else None
            out = self.dir / f"run-{run_id}.html"
            if run_id is not None and (not out.exists() or pages.stat().st_mtime_ns > out.stat().st_mtime_ns):
                self.assemble(run_id)

    async def close(self) -> None:
        for run_id in sorted(self.touched):
            self.assemble(run_id)
        self.touched.clear()

    def assemble(self, run_id: int) -> tuple[Path, Path]:
        """(Re)build the run's printable HTML and roster CSV from its pages, ordered by village."""
        pages = sorted(p for p in self._pages(run_id).glob("*.html") if _PAGE_FILE.fullmatch(p.name))
        entries = []
        for p in pages:
            head, _, body = p.read_text(encoding="utf-8").partition("\n")
            entries.append((head[4:-3].split("\t"), body))
        entries.sort(key=lambda e: (e[0][3], e[0][4], e[0][1]))
        out = self.dir / f"run-{run_id}.html"
        tmp = out.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            f.write(f'<!doctype html>\n<html lang="zh-CN"><head><meta charset="utf-8"><title>通知书 run {run_id}</title>'
                    f"<style>{PAGE_CSS}</style></head><body>\n")
            for _, body in entries:
                f.write(body)
            f.write("</body></html>\n")
        os.replace(tmp, out)
        roster = self.dir / f"run-{run_id}-roster.csv"
        tmp = roster.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8-sig", newline="") as f:
            w = csv.writer(f)
            w.writerow(["序号", "投递编号", "居民编号", "姓名", "乡镇", "村", "地址", "通知事项", "签收人", "签收日期"])
            for i, (row, _) in enumerate(entries, start=1):
                w.writerow(safe_row([i, *row, "", ""]))   # no formula injection through names or addresses
        os.replace(tmp, roster)
        return out, roster

    def describe(self) -> str:
        return f"letters ({self.dir})"
