"""`letter`: print-ready letters, one HTML file per run (one page per resident) and a CSV
roster for the village committee that hands them out.

Each page is first written as its own file named by delivery id (atomic, so a resend after a
crash replaces it); `close()` assembles the run's printable file and roster from the pages, and
`open()` assembles any run whose pages are newer than its file (a process killed before `close`).

Resident fields are data, never markup: the page escapes them (a newline in an address becomes
`<br>`), and the roster fields ride in the page's first line as JSON inside an HTML comment, with
`<`, `>` and `-` escaped so no value can end the comment or the line. A page that cannot be
written fails its own delivery; a page that cannot be read is left out of its run's file with an
error in the log; neither stops other letters, runs or channels.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import html
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from ..cellsafe import safe_row
from ..errors import ProviderError
from ..status import Channel, DeliveryStatus
from .base import OutboundMessage, Provider, SendResult

log = logging.getLogger("notifier.letter")

PAGE_CSS = """@page { size: A4; margin: 25mm 20mm; }
body { font-family: "SimSun", "Songti SC", "Noto Serif CJK SC", serif; font-size: 14pt; line-height: 1.8; }
.letter { page-break-after: always; break-after: page; }
.letter:last-child { page-break-after: auto; break-after: auto; }
.address { font-size: 11pt; margin-bottom: 2em; } .sign { text-align: right; margin-top: 3em; }
.ref { font-size: 9pt; color: #555; margin-top: 2em; }"""
_PAGE_FILE = re.compile(r"(\d+)\.html")
_RUN_DIR = re.compile(r"run-(\d+)")
_COMMENT_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "-": "\\u002d", "&": "\\u0026"})
_RETRY_HELPS = frozenset({errno.ENOSPC, errno.EDQUOT})  # the disk may have room again later


def _text(value: str) -> str:
    """A resident field as HTML text: escaped, its line breaks kept as `<br>`."""
    return "<br>".join(html.escape(line) for line in value.splitlines() or [""])


def _head(row: list[Any]) -> str:
    """The page's first line: its roster fields as JSON in a comment that no value can close."""
    return "<!--" + json.dumps(row, ensure_ascii=False).translate(_COMMENT_SAFE) + "-->"


def _row(head: str) -> list[str]:
    """The roster fields of a page's first line (also the tab-separated form of older pages)."""
    inner = head.removeprefix("<!--").removesuffix("-->")
    fields = json.loads(inner) if inner.startswith("[") else inner.split("\t")
    if not isinstance(fields, list) or len(fields) != 7:
        raise ValueError("the first line does not hold the 7 roster fields")
    return [str(x) for x in fields]


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
        m = message.meta
        page = (
            f'<section class="letter" id="d{message.delivery_id}">\n'
            f'<div class="address">{_text(message.recipient)}<br>{_text(message.recipient_name)} 收</div>\n'
            f"{message.body}\n"
            f'<div class="ref">投递编号 {message.delivery_id} · 居民编号 {_text(message.resident_id)}</div>\n</section>\n'
        )
        row = [
            message.delivery_id,
            message.resident_id,
            message.recipient_name,
            m.get("township", ""),
            m.get("village", ""),
            message.recipient,
            m.get("title", ""),
        ]
        path = self._pages(message.run_id) / f"{message.delivery_id:08d}.html"
        tmp = path.with_suffix(".tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(_head(row) + "\n" + page, encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise ProviderError.classify(
                exc.errno in _RETRY_HELPS,
                f"cannot write the letter page {path}: {exc.strerror or exc}",
                self.name,
                code="write",
            ) from None
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
        pages = sorted(
            p for p in self._pages(run_id).glob("*.html") if _PAGE_FILE.fullmatch(p.name) and p.is_file()
        )
        entries = []
        for p in pages:
            try:
                head, _, body = p.read_text(encoding="utf-8").partition("\n")
                entries.append((_row(head), body))
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                log.error("letter page %s left out of run %s: %s", p, run_id, exc)
        entries.sort(key=lambda e: (e[0][3], e[0][4], e[0][1]))
        out = self.dir / f"run-{run_id}.html"
        tmp = out.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            f.write(
                f'<!doctype html>\n<html lang="zh-CN"><head><meta charset="utf-8"><title>通知书 run {run_id}</title>'
                f"<style>{PAGE_CSS}</style></head><body>\n"
            )
            for _, body in entries:
                f.write(body)
            f.write("</body></html>\n")
        os.replace(tmp, out)
        roster = self.dir / f"run-{run_id}-roster.csv"
        tmp = roster.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8-sig", newline="") as f:
            w = csv.writer(f)
            w.writerow(
                [
                    "序号",
                    "投递编号",
                    "居民编号",
                    "姓名",
                    "乡镇",
                    "村",
                    "地址",
                    "通知事项",
                    "签收人",
                    "签收日期",
                ]
            )
            for i, (row, _) in enumerate(entries, start=1):
                w.writerow(safe_row([i, *row, "", ""]))  # no formula injection through names or addresses
        os.replace(tmp, roster)
        return out, roster

    def describe(self) -> str:
        return f"letters ({self.dir})"
