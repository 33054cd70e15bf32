"""A 公示 list as a page: one HTML document for the website, printed to an A4 PDF by WeasyPrint.

The same HTML is stored (and served) and printed, so the board and the website show one list.
It reuses the letters' fonts (Noto CJK, embedded by WeasyPrint), date format and QR code (one
pixel per module, unsmoothed: the PDF holds segno's matrix). The list's SHA-256 stands in every
page's footer beside the page number, the validity period under the title, and the QR code leads
to the self-query page, where a resident sees their own notices without anyone else's data.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from ..channels.letter.pdf import FONTS, SANS, cn_date, qr_png
from .rows import ListRow

PAGE_CSS = """@page {{ size: A4; margin: 18mm 15mm 20mm 15mm;
  @bottom-left {{ content: "{footer}"; font-size: 7pt; }}
  @bottom-right {{ content: "第 " counter(page) " 页 / 共 " counter(pages) " 页"; font-size: 8pt; }} }}
"""
LIST_CSS = f"""body {{ font-family: {FONTS}; font-size: 10.5pt; line-height: 1.5; margin: 0 auto;
  max-width: 190mm; }}
h1 {{ font-family: {SANS}; font-size: 17pt; text-align: center; margin: 0 0 2mm; }}
.meta, .period {{ text-align: center; margin: 0 0 2mm; }} .period {{ font-family: {SANS}; }}
table {{ border-collapse: collapse; width: 100%; margin: 4mm 0; }}
th, td {{ border: 0.5pt solid #000; padding: 1.2mm 2mm; text-align: left; }}
thead {{ display: table-header-group; }} tr {{ page-break-inside: avoid; }}
th {{ font-family: {SANS}; font-size: 9.5pt; white-space: nowrap; }} td.n {{ text-align: right; }}
.query {{ margin-top: 4mm; font-size: 9.5pt; }}
.query img {{ float: left; width: 26mm; height: 26mm; margin-right: 4mm; image-rendering: pixelated; }}
.digest {{ clear: both; font-size: 8pt; color: #333; padding-top: 4mm;
  word-break: break-all; }}
.expired {{ border: 2pt solid #b00; color: #b00; font-family: {SANS}; font-size: 14pt; text-align: center;
  padding: 2mm; margin: 0 0 4mm; }}"""
EXPIRED_BANNER = '<p class="expired" role="alert">已过公示期：本名单公示期已结束，仅供查阅。</p>'


@dataclass(frozen=True)
class ListDocument:
    """Everything printed on one list."""

    title: str  # the item's title
    department: str
    document_no: str  # 文号, or empty
    valid_from: date
    valid_until: date
    contact: str  # the official phone for objections, or empty
    query_url: str  # the self-query page the QR code leads to
    rows: tuple[ListRow, ...]
    sha256: str  # of the rows (rows.rows_sha256)
    run_id: int

    @property
    def heading(self) -> str:
        """`<title> 公示名单`; a title that already ends in 公示 (…发放公示) just gains 名单."""
        return f"{self.title}名单" if self.title.endswith("公示") else f"{self.title} 公示名单"

    @property
    def footer(self) -> str:
        """Printed at the foot of every page: which run, and the list's SHA-256."""
        return f"批次 {self.run_id} · 名单 SHA-256 {self.sha256}"

    @property
    def period(self) -> str:
        return f"公示期：{cn_date(self.valid_from.isoformat())} 至 {cn_date(self.valid_until.isoformat())}"


def _e(value: object) -> str:
    return html.escape(str(value))


def _css_text(text: str) -> str:
    """Text safe inside a CSS string (the footer: digits, hex and Chinese; quotes dropped)."""
    return "".join(c for c in text if c not in '"\\<>\n')


def columns(rows: Sequence[ListRow]) -> list[str]:
    """The header: household size and amount only when some row has them, then the public fields."""
    head = ["序号", "乡镇（街道）", "村（社区）", "户主姓名"]
    if any(r.household_size is not None for r in rows):
        head.append("家庭人口（人）")
    if any(r.amount is not None for r in rows):
        head.append("金额（元）")
    publics = list(dict.fromkeys(k for r in rows for k in r.public))
    return head + publics


def _cells(i: int, row: ListRow, head: Sequence[str]) -> str:
    out = [f'<td class="n">{i}</td>', f"<td>{_e(row.township)}</td>", f"<td>{_e(row.village)}</td>"]
    out.append(f"<td>{_e(row.name_masked)}</td>")
    if "家庭人口（人）" in head:
        out.append(f'<td class="n">{"" if row.household_size is None else row.household_size}</td>')
    if "金额（元）" in head:
        amount = "" if row.amount is None else f"{row.amount:,.2f}"
        out.append(f'<td class="n">{amount}</td>')
    out += [f"<td>{_e(row.public.get(k, ''))}</td>" for k in head[len(out) :]]
    return "<tr>" + "".join(out) + "</tr>"


def list_html(doc: ListDocument) -> str:
    head = columns(doc.rows)
    body = "".join(_cells(i, r, head) for i, r in enumerate(doc.rows, start=1))
    if not doc.rows:
        body = f'<tr><td colspan="{len(head)}">（无）</td></tr>'
    meta = " ".join(_e(x) for x in (doc.department, doc.document_no) if x)
    objection = f"公示期内如有异议，请向{_e(doc.department or '发布部门')}反映"
    objection += f"，联系电话：{_e(doc.contact)}。" if doc.contact else "。"
    return (
        f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(doc.heading)}</title><style>{PAGE_CSS.format(footer=_css_text(doc.footer))}"
        f"{LIST_CSS}</style></head><body>\n"
        f"<h1>{_e(doc.heading)}</h1>"
        + (f'<p class="meta">{meta}</p>' if meta else "")
        + f'<p class="period">{_e(doc.period)}</p>\n'
        + "<table><thead><tr>"
        + "".join(f'<th scope="col">{_e(h)}</th>' for h in head)
        + f"</tr></thead><tbody>\n{body}\n</tbody></table>\n"
        + f'<p class="note">共 {len(doc.rows)} 户。{objection}</p>'
        + f'<p class="query"><img src="{qr_png(doc.query_url)}" alt="">'
        + f"本人通知情况可扫描二维码或访问 {_e(doc.query_url)} 查询（需本人身份证号和姓名）。</p>\n"
        + f'<p class="digest">{_e(doc.footer)}</p>\n'
        + "</body></html>\n"
    )


def with_banner(page: str) -> str:
    """The stored page with the expired banner at the top of its body (the stored text unchanged)."""
    return page.replace("<body>\n", "<body>\n" + EXPIRED_BANNER + "\n", 1)


def list_pdf(page: str) -> bytes:
    from weasyprint import HTML

    pdf: bytes = HTML(string=page).write_pdf()
    return pdf
