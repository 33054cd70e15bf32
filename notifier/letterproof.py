"""Letter proofs: one resident's letter of a rule as a PDF, before any run exists.

Staff check a letter as it will be printed — the window block on a real address, the sender,
文号 and date, the text with this resident's values — before the rule's run is created. The
proof is laid out by the same code as the run's PDFs (channels/letter/pdf.py), but it can never
be mistaken for a notice: instead of a verification code it prints 样张, and every page carries
the watermark 样张 · 非正式通知. It holds the resident's name and address in full (that is what
is checked), so every proof is made by an account holding rules.read and is audited.
"""

from __future__ import annotations

import html
from datetime import date

import sqlalchemy as sa

from .actors import actor_name
from .app import App
from .audience import choose_channel
from .audit import log as audit
from .channels.letter.pdf import LETTER_CSS, SANS, Letter, Sender, letter_section
from .errors import InputError, NotFound
from .rendering.context import ResidentContext, params_context
from .rendering.templates import TemplateSet, item_context, template_context
from .rules.compile import params_in_force
from .rules.model import Rule
from .status import Channel

PROOF_CODE = "样张"
WATERMARK = "样张 · 非正式通知"
PROOF_CSS = f"""
.watermark {{ position: fixed; top: 110mm; left: -10mm; width: 190mm; text-align: center;
  transform: rotate(-30deg); font-family: {SANS}; font-size: 46pt; color: rgba(200, 0, 0, 0.18); }}
.proof {{ border-top: 0.3pt solid #777; padding-top: 3mm; font-size: 9pt; }}
.proof .code {{ font-family: {SANS}; font-size: 13pt; color: #b00; }}"""


def letter_proof(app: App, rule: Rule, resident_id: str, on: date, by: str) -> bytes:
    """The PDF of `resident_id`'s letter of `rule` on `on`, made (and audited) for `by`;
    InputError when the rule sends no letter or the template cannot render for them, NotFound
    for a resident not in the register."""
    from weasyprint import HTML

    if Channel.LETTER not in rule.templates:
        raise InputError.translatable(
            "The rule %(id)s sends no letter, so it has no letter proof.", id=rule.id
        )
    t = app.residents
    with app.reader.connect() as conn:
        row = conn.execute(sa.select(t).where(t.c.resident_id == resident_id)).first()
    if row is None:
        raise NotFound(f"no resident {resident_id!r} in the register")
    context = template_context(
        ResidentContext(app.dictionary)(row),
        item_context(rule.item, app.dictionary.domains),
        params_context(params_in_force(rule, on)),
        None,
        rule.id,
        on,
        {"verify_code": PROOF_CODE, "verify_url": f"{app.config.serve.public_url.rstrip('/')}/v"},
    )
    body = TemplateSet(rule.templates, rule.template_sources).render(Channel.LETTER, context).body
    _, address, _ = choose_channel([Channel.LETTER], None, None, None, None, row.address, False)
    item = Letter(
        delivery_id=0,
        resident_id=row.resident_id,
        name=row.name or "",
        township=row.township or "",
        village=row.village or "",
        address=address or row.address or "",
        postcode=str(getattr(row, "f_postcode", "") or ""),
        title=rule.item.title,
        department=rule.item.department or "",
        document_no=rule.item.document_no or "",
        on_date=on.isoformat(),
        code="",  # no verification code: the proof's footer says 样张 instead
        url="",
        body=body,
    )
    pdf: bytes = HTML(string=proof_html(item, _sender(app))).write_pdf()
    with app.engine.begin() as conn:
        audit.record(conn, actor_name(by), "rules.letter_proof", f"rule:{rule.id}", resident=resident_id)
    return pdf


def proof_html(item: Letter, sender: Sender) -> str:
    """The letter's page (pdf.letter_section) with the proof's footer and watermark."""
    footer = (
        f'<p class="proof">核验码 <span class="code">{PROOF_CODE}</span>'
        f"（{html.escape(WATERMARK)}：本页仅供核对版式与内容，不是发给居民的通知）</p>"
    )
    page = letter_section(item, sender).replace("</section>", footer + "</section>", 1)
    title = html.escape(f"{item.title} · {WATERMARK}")
    return (
        f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{LETTER_CSS}{PROOF_CSS}</style></head><body>"
        f'<div class="watermark">{html.escape(WATERMARK)}</div>\n{page}</body></html>\n'
    )


def _sender(app: App) -> Sender:
    """The first letter provider's sender block (the item's department when it has none)."""
    from .channels.letter.settings import LetterSettings
    from .channels.registry import kind_of

    letters = app.config.channels.get(Channel.LETTER)
    for name in letters.providers if letters else []:
        if kind_of(app.config, name) == "letter":
            o = LetterSettings.from_table(app.config.provider_settings(name), name, app.config.where())
            return Sender(o.sender, o.return_address, o.return_postcode, o.phone)
    return Sender()
