"""PDF letters: one A4 page per resident, one PDF per run and village, and the village's 签收 roster.

Township staff hand letters out village by village, so each village gets its own PDF (sorted by
address, then name) with a signature roster (PDF to print, CSV to keep) in the same order. The
page is laid out for a C5/DL window envelope folded in three: the recipient block (postcode,
address, name) sits where the window is (20 mm from the left, 45 mm from the top, 85 x 40 mm),
with the return address in small type above it; the sender, the document number (文号) and the
date stand on the right; below, the message as it was approved; at the foot the verification code
and, when `[serve] public_url` is set, a QR code of its URL (segno; a PNG of one pixel per module,
drawn unsmoothed, so the PDF holds exactly segno's matrix). Fonts are Debian's Noto CJK (embedded,
subset, by WeasyPrint). Villages render in parallel, one process each (`workers`, default all cores).
"""

from __future__ import annotations

import csv
import html
import json
import logging
import multiprocessing
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import date
from itertools import groupby
from pathlib import Path
from typing import Any

from ...cellsafe import safe_row
from ..base import OutboundMessage

log = logging.getLogger("notifier.letter")
LETTER_FILE = re.compile(r"(\d+)\.letter")
FONTS = '"Noto Serif CJK SC", "Noto Serif CJK", "Source Han Serif SC", serif'
SANS = '"Noto Sans CJK SC", "Noto Sans CJK", "Source Han Sans SC", sans-serif'
LETTER_CSS = f"""@page {{ size: A4; margin: 15mm 20mm 15mm 20mm; }}
body {{ font-family: {FONTS}; font-size: 12pt; line-height: 1.7; margin: 0; }}
p {{ margin: 0; }} .letter {{ page-break-after: always; break-after: page; }}
.letter:last-child {{ page-break-after: auto; break-after: auto; }}
.from {{ height: 30mm; text-align: right; font-size: 10pt; line-height: 1.5; }}
.window {{ height: 40mm; }}
.return {{ width: 85mm; font-size: 7pt; line-height: 1.3; border-bottom: 0.3pt solid #000;
  margin-bottom: 2mm; }}
.to {{ width: 85mm; font-size: 11pt; line-height: 1.45; }} .to .name {{ font-size: 13pt; }}
.text {{ min-height: 140mm; margin-top: 10mm; }}
.text p {{ margin: 0.8em 0; }}
.text h1 {{ font-family: {SANS}; font-size: 16pt; text-align: center; line-height: 1.4; }}
.text .sign {{ text-align: right; margin-top: 2em; }}
.check {{ border-top: 0.3pt solid #777; padding-top: 3mm; font-size: 9pt; line-height: 1.6; height: 26mm; }}
.check img {{ float: left; width: 24mm; height: 24mm; margin-right: 5mm; image-rendering: pixelated; }}
.check .code {{ font-family: {SANS}; font-size: 13pt; }}
.from, .return, .to, .check {{ white-space: pre-line; }}"""
ROSTER_CSS = f"""@page {{ size: A4; margin: 15mm;
  @bottom-center {{ content: counter(page) " / " counter(pages); }} }}
body {{ font-family: {FONTS}; font-size: 10pt; }} h1 {{ font-family: {SANS}; font-size: 14pt; }}
table {{ border-collapse: collapse; width: 100%; table-layout: fixed; }}
th, td {{ border: 0.5pt solid #000; padding: 1.5mm; line-height: 1.4; }}
thead {{ display: table-header-group; }}
tr {{ height: 11mm; page-break-inside: avoid; }} th {{ font-size: 9pt; white-space: nowrap; }}
col.n {{ width: 9mm; }} col.d {{ width: 16mm; }} col.r {{ width: 18mm; }} col.name {{ width: 22mm; }}
col.code {{ width: 30mm; }} col.sign {{ width: 26mm; }} col.day {{ width: 22mm; }}"""
ROSTER_HEADER = ["序号", "投递编号", "居民编号", "姓名", "地址", "核验码", "签收人", "签收日期"]
_COMMENT_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "-": "\\u002d", "&": "\\u0026"})
_UNSAFE_NAME = re.compile(r"[^\w]+")
_NUMBERS = re.compile(r"(\d+)")
QR_MASK = 1  # any fixed mask: see qr_code


@dataclass(frozen=True)
class Sender:
    """Who the letters are from (the letter provider's settings; the item's department by default)."""

    name: str = ""
    return_address: str = ""
    return_postcode: str = ""
    phone: str = ""


@dataclass(frozen=True)
class Letter:
    """One resident's letter, as its `.letter` file keeps it until the run's PDFs are assembled."""

    delivery_id: int
    resident_id: str
    name: str
    township: str
    village: str
    address: str
    postcode: str
    title: str
    department: str
    document_no: str
    on_date: str  # YYYY-MM-DD (the run date), or empty
    code: str  # the verification code, canonical (empty without [verification] secret)
    url: str  # its public URL (empty without [serve] public_url)
    body: str  # the approved message (HTML)

    @property
    def place(self) -> tuple[str, str]:
        return (self.township, self.village)


def letter(message: OutboundMessage, public_url: str) -> Letter:
    m = message.meta
    code = str(m.get("verify_code") or "")
    return Letter(
        delivery_id=message.delivery_id,
        resident_id=message.resident_id,
        name=message.recipient_name,
        township=str(m.get("township") or ""),
        village=str(m.get("village") or ""),
        address=message.recipient,
        postcode=str(m.get("postcode") or ""),
        title=str(m.get("title") or ""),
        department=str(m.get("department") or ""),
        document_no=str(m.get("document_no") or ""),
        on_date=str(m.get("on_date") or ""),
        code=code,
        url=f"{public_url.rstrip('/')}/v/{code}" if code and public_url else "",
        body=message.body,
    )


def letter_file(item: Letter) -> str:
    """A `.letter` file: the letter's fields as JSON in a comment no value can close, then its body."""
    fields = {k: v for k, v in asdict(item).items() if k != "body"}
    return "<!--" + json.dumps(fields, ensure_ascii=False).translate(_COMMENT_SAFE) + "-->\n" + item.body


def read_letter(path: Path) -> Letter:
    head, _, body = path.read_text(encoding="utf-8").partition("\n")
    fields = json.loads(head.removeprefix("<!--").removesuffix("-->"))
    return Letter(**fields, body=body)


def natural(text: str) -> tuple[tuple[int, int | str], ...]:
    """A sort key reading numbers as numbers: 东村2号 before 东村15号, as the houses stand."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in _NUMBERS.split(text) if part)


def _readable(paths: Iterable[Path], run_id: int) -> Iterator[Letter]:
    """The letters that can be read; one that cannot is left out with an error in the log."""
    for p in paths:
        try:
            yield read_letter(p)
        except (OSError, UnicodeDecodeError, ValueError, TypeError) as exc:
            log.error("letter %s left out of the PDFs of run %s: %s", p.name, run_id, exc.__class__.__name__)


def by_village(letters: Iterable[Letter]) -> list[list[Letter]]:
    """Letters grouped by (township, village), each group sorted by address (house numbers as
    numbers), then name: the order a village committee walks them round."""
    ordered = sorted(
        letters, key=lambda x: (x.township, x.village, natural(x.address), x.name, x.delivery_id)
    )
    return [list(group) for _, group in groupby(ordered, key=lambda x: x.place)]


# -- the page ------------------------------------------------------------------------------------
def _text(value: str) -> str:
    """Escaped text, its line breaks kept as newlines: the blocks that hold it are `white-space:
    pre-line`, which costs WeasyPrint far less than a `<br>` element (a box and a styled
    pseudo-element each) would."""
    return "\n".join(html.escape(" ".join(line.split())) for line in value.splitlines() or [""])


def cn_date(day: str) -> str:
    if not day:
        return ""
    d = date.fromisoformat(day)
    return f"{d.year}年{d.month}月{d.day}日"


def qr_code(url: str) -> Any:
    """The QR code (a `segno.QRCode`) of `url`, error correction M, with a fixed mask: any of the
    eight masks gives a valid code, and scoring all eight (segno's default) takes three times as
    long as encoding with one."""
    import segno

    return segno.make_qr(url, error="m", mask=QR_MASK)


def qr_png(url: str) -> str:
    """The QR code of `url` as a PNG data URI, one pixel per module with the 4-module quiet zone,
    drawn unsmoothed (`image-rendering: pixelated`): the PDF holds segno's matrix exactly, and an
    image costs far less to lay out than an SVG of a few hundred rectangles."""
    return str(qr_code(url).png_data_uri(scale=1, border=4))


def letter_section(item: Letter, sender: Sender) -> str:
    """One resident's page: window block, sender block, the message, the verification footer.
    Few elements, lines split by newlines in `pre-line` blocks: WeasyPrint's time goes mostly into
    styling boxes."""
    sent_by = sender.name or item.department
    back = " ".join(x for x in (sender.return_postcode, sender.return_address, sent_by) if x)
    to = [_text(x) for x in (item.postcode, item.address) if x] + [
        f'<span class="name">{_text(item.name)} 收</span>'
    ]
    right = [_text(x) for x in (sent_by, item.document_no, cn_date(item.on_date)) if x]
    check, nl = "", "\n"
    if item.code:
        code = f"{item.code[:5]}-{item.code[5:]}"
        how = (
            f"扫描二维码或访问 {html.escape(item.url.rsplit('/', 1)[0])}，输入核验码"
            if item.url
            else "请向发布部门核实，核验码"
        )
        phone = f"；咨询电话 {_text(sender.phone)}" if sender.phone else ""
        check = (
            '<p class="check">'
            + (f'<img src="{qr_png(item.url)}" alt="">' if item.url else "")
            + f'核验本通知真伪：{how}\n<span class="code">{code}</span>{phone}'
            + f"\n投递编号 {item.delivery_id} · 居民编号 {_text(item.resident_id)}</p>"
        )
    # No `id` on the section: WeasyPrint makes every id a named destination, 10 ms a page.
    return (
        f'<section class="letter"><p class="from">{nl.join(right)}</p>'
        f'<div class="window"><p class="return">{_text(back)}</p><p class="to">{nl.join(to)}</p></div>'
        f'<div class="text">{item.body}</div>{check}</section>\n'
    )


def letters_html(letters: Sequence[Letter], sender: Sender, title: str) -> str:
    return (
        f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{LETTER_CSS}</style></head><body>\n"
        + "".join(letter_section(x, sender) for x in letters)
        + "</body></html>\n"
    )


def roster_rows(letters: Sequence[Letter]) -> list[list[Any]]:
    return [
        [
            i,
            x.delivery_id,
            x.resident_id,
            x.name,
            x.address,
            f"{x.code[:5]}-{x.code[5:]}" if x.code else "",
            "",
            "",
        ]
        for i, x in enumerate(letters, start=1)
    ]


def roster_html(letters: Sequence[Letter], title: str) -> str:
    cols = "".join(f'<col class="{c}">' for c in ("n", "d", "r", "name", "addr", "code", "sign", "day"))
    head = "".join(f"<th>{h}</th>" for h in ROSTER_HEADER)
    body = "".join(
        "<tr>" + "".join(f"<td>{_text(str(v))}</td>" for v in row[:6]) + "<td></td><td></td></tr>"
        for row in roster_rows(letters)
    )
    return (
        f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{ROSTER_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<table><colgroup>{cols}</colgroup><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></body></html>\n"
    )


# -- files ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VillageFiles:
    """What one village's assembly wrote."""

    township: str
    village: str
    letters: Path
    roster_pdf: Path
    roster_csv: Path
    pages: int


@dataclass(frozen=True)
class _Job:
    folder: Path
    stem: str
    run_id: int
    letters: tuple[Letter, ...]
    sender: Sender


def _write_pdf(source: str, out: Path) -> None:
    from weasyprint import HTML

    tmp = out.with_name(out.name + ".tmp")
    HTML(string=source).write_pdf(tmp)
    os.replace(tmp, out)


def render_village(job: _Job) -> VillageFiles:
    """One village's letters PDF, roster PDF and roster CSV (a process of its own in the pool)."""
    first = job.letters[0]
    place = f"{first.township}{first.village}" or "未填村"
    job.folder.mkdir(parents=True, exist_ok=True)
    letters, roster_pdf, roster_csv = (
        job.folder / f"{job.stem}{s}" for s in (".pdf", "-签收.pdf", "-签收.csv")
    )
    _write_pdf(letters_html(job.letters, job.sender, f"{first.title} · {place}"), letters)
    _write_pdf(roster_html(job.letters, f"{first.title} 签收表 · {place}（批次 {job.run_id}）"), roster_pdf)
    tmp = roster_csv.with_name(roster_csv.name + ".tmp")
    with tmp.open("w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f)
        w.writerow(ROSTER_HEADER)
        w.writerows(safe_row(r) for r in roster_rows(job.letters))  # no formula injection
    os.replace(tmp, roster_csv)
    return VillageFiles(first.township, first.village, letters, roster_pdf, roster_csv, len(job.letters))


def stem(index: int, group: Sequence[Letter]) -> str:
    """`01-城关镇-东村`: the village's files sort in township order and are safe file names."""
    names = [_UNSAFE_NAME.sub("_", x).strip("_") for x in group[0].place]
    return "-".join([f"{index:02d}", *(n for n in names if n)] or [f"{index:02d}"])


def assemble_pdfs(
    pages_dir: Path, out_dir: Path, run_id: int, sender: Sender, workers: int = 0
) -> list[VillageFiles]:
    """(Re)build every village's PDFs of a run from its `.letter` files: one process per village
    (at most `workers`, 0: every core); the files of villages no longer present are removed."""
    found = sorted(p for p in pages_dir.glob("*.letter") if LETTER_FILE.fullmatch(p.name) and p.is_file())
    groups = by_village(_readable(found, run_id))
    jobs = [_Job(out_dir, stem(i, g), run_id, tuple(g), sender) for i, g in enumerate(groups, start=1)]
    n = min(len(jobs), workers or os.cpu_count() or 1)
    if n <= 1:
        done = [render_village(j) for j in jobs]
    else:  # spawned, not forked: the sender's threads may hold locks (logging) a fork would copy
        # Biggest villages first, so no core is left with one big village at the end.
        order = sorted(range(len(jobs)), key=lambda i: -len(jobs[i].letters))
        with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {i: pool.submit(render_village, jobs[i]) for i in order}
            done = [futures[i].result() for i in range(len(jobs))]
    keep = {p.name for v in done for p in (v.letters, v.roster_pdf, v.roster_csv)}
    for old in out_dir.glob("*") if out_dir.exists() else ():
        if old.name not in keep and old.suffix in (".pdf", ".csv"):
            old.unlink()
    return done
