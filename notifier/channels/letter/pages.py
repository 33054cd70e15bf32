"""A letter's page and a run's printable file: the markup, and assembling the pages of a run.

Resident fields are data, never markup: the page escapes them (a newline in an address becomes
`<br>`), and the roster fields ride in the page's first line as JSON inside an HTML comment, with
`<`, `>` and `-` escaped so no value can end the comment or the line. A page that cannot be read
is left out of its run's file with an error in the log; it stops no other letter.
"""

from __future__ import annotations

import csv
import html
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from ...cellsafe import safe_row
from ..base import OutboundMessage

log = logging.getLogger("notifier.letter")

PAGE_CSS = """@page { size: A4; margin: 25mm 20mm; }
body { font-family: "SimSun", "Songti SC", "Noto Serif CJK SC", serif; font-size: 14pt; line-height: 1.8; }
.letter { page-break-after: always; break-after: page; }
.letter:last-child { page-break-after: auto; break-after: auto; }
.address { font-size: 11pt; margin-bottom: 2em; } .sign { text-align: right; margin-top: 3em; }
.ref { font-size: 9pt; color: #555; margin-top: 2em; }"""
PAGE_FILE = re.compile(r"(\d+)\.html")
ROSTER_HEADER = [
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
_COMMENT_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "-": "\\u002d", "&": "\\u0026"})


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


def page(message: OutboundMessage) -> str:
    """One resident's page file: the roster line, then the letter's HTML section."""
    m = message.meta
    row = [
        message.delivery_id,
        message.resident_id,
        message.recipient_name,
        m.get("township", ""),
        m.get("village", ""),
        message.recipient,
        m.get("title", ""),
    ]
    return (
        _head(row)
        + "\n"
        + f'<section class="letter" id="d{message.delivery_id}">\n'
        + f'<div class="address">{_text(message.recipient)}<br>{_text(message.recipient_name)} 收</div>\n'
        + f"{message.body}\n"
        + f'<div class="ref">投递编号 {message.delivery_id} · 居民编号 {_text(message.resident_id)}</div>\n'
        + "</section>\n"
    )


def _entries(pages_dir: Path, run_id: int) -> list[tuple[list[str], str]]:
    """(roster fields, page HTML) of every readable page, ordered by township, village, resident."""
    entries = []
    for p in sorted(p for p in pages_dir.glob("*.html") if PAGE_FILE.fullmatch(p.name) and p.is_file()):
        try:
            head, _, body = p.read_text(encoding="utf-8").partition("\n")
            entries.append((_row(head), body))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            log.error("letter page %s left out of run %s: %s", p, run_id, exc)
    entries.sort(key=lambda e: (e[0][3], e[0][4], e[0][1]))
    return entries


def assemble(folder: Path, run_id: int) -> tuple[Path, Path]:
    """(Re)build the run's printable HTML and roster CSV in `folder` from the run's pages."""
    entries = _entries(folder / f"run-{run_id}" / "pages", run_id)
    out = folder / f"run-{run_id}.html"
    tmp = out.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(
            '<!doctype html>\n<html lang="zh-CN"><head><meta charset="utf-8">'
            f"<title>通知书 run {run_id}</title>"
            f"<style>{PAGE_CSS}</style></head><body>\n"
        )
        for _, body in entries:
            f.write(body)
        f.write("</body></html>\n")
    os.replace(tmp, out)
    roster = folder / f"run-{run_id}-roster.csv"
    tmp = roster.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f)
        w.writerow(ROSTER_HEADER)
        for i, (row, _) in enumerate(entries, start=1):
            w.writerow(safe_row([i, *row, "", ""]))  # no formula injection through names or addresses
    os.replace(tmp, roster)
    return out, roster
