"""PDF letters through a real send (issue 13, item 1): one A4 page per resident in one PDF per
village, sorted by township, village and address; the recipient block inside a DL window; the
sender, return address, 文号, date and verification code printed; every character drawn from an
embedded font that has its glyph; the QR code is exactly segno's encoding of the verification
URL; a 签收 roster PDF and CSV per village in the same order."""

from __future__ import annotations

import csv
import functools
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fontTools.ttLib import TTCollection, TTFont
from pypdf import PdfReader

from notifier import runs
from notifier.app import App
from notifier.channels.letter.pdf import qr_code
from notifier.residents.importer import import_residents
from notifier.storage.schema import deliveries, run_messages
from notifier.verification import display
from tests.support.campaign import HEADER, ON, approve_all, rule, send
from tests.support.project import write_config

PUBLIC = "https://notice.example.gov.cn"
MM = 72 / 25.4  # PDF points per millimetre
A4_HEIGHT = 297 * MM
# resident id, name, address, township, village, postcode: letters only (no phone, no e-mail)
PEOPLE = [
    ["P01", "欧阳明", "河口乡西村12号", "河口乡", "西村", "450102"],
    ["P02", "张三", "城关镇东村8号", "城关镇", "东村", ""],
    ["P03", "李四", "城关镇东村2号", "城关镇", "东村", "450101"],
    ["P04", "王五", "城关镇南村5号", "城关镇", "南村", ""],
    ["P05", "赵六", "城关镇东村15号", "城关镇", "东村", ""],
    ["P06", "钱七", "河口乡西村3号", "河口乡", "西村", ""],
]
EXTRA = f"""
[serve]
public_url = "{PUBLIC}"

[providers.letter]
sender = "某某县农业农村局"
return_address = "城关镇人民路1号"
return_postcode = "450001"
phone = "0371-12345678"
workers = 2
"""


@pytest.fixture
def sent(tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[App, int]]:
    monkeypatch.setenv("NOTIFIER_VERIFY_SECRET", "county-verification-secret-0123456789")
    cfg = write_config(tmp_path, sqlite_url, EXTRA)
    fields = tmp_path / "rules" / "fields.yaml"
    fields.write_text(
        fields.read_text(encoding="utf-8").replace(
            "fields:\n", "fields:\n  postcode: {type: text, label: 邮政编码, columns: [邮政编码]}\n", 1
        ),
        encoding="utf-8",
    )
    rule_file = tmp_path / "rules" / "farm-subsidy-2026.yaml"
    rule_file.write_text(
        rule_file.read_text(encoding="utf-8").replace(
            "  disclosure: public\n", "  disclosure: public\n  document_no: 农发〔2026〕12号\n", 1
        ),
        encoding="utf-8",
    )
    with (tmp_path / "p.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow([*HEADER, "邮政编码"])
        w.writerows(
            [
                [rid, name, "", "", addr, town, village, "农村", "2", "", pc]
                for rid, name, addr, town, village, pc in PEOPLE
            ]
        )
    app = App.open(cfg)
    import_residents(app, tmp_path / "p.csv")
    run_id = runs.create_run(app, rule(app), ON, "clerk").run
    approve_all(app, run_id)
    report = send(app, run_id)
    assert (report.sent, report.by_channel) == (6, {"letter": 6})
    yield app, run_id
    app.close()


def _codes(app: App, run_id: int) -> dict[str, str]:
    d, m = deliveries, run_messages
    with app.engine.connect() as conn:
        return dict(
            conn.execute(
                sa.select(d.c.resident_id, m.c.verify_code)
                .join(m, m.c.id == d.c.message_id)
                .where(d.c.run_id == run_id, d.c.channel == "letter")
            )
            .tuples()
            .all()
        )


def _expected_order() -> list[list[list[str]]]:
    """Villages in (township, village) order, residents by address within each."""
    villages: dict[tuple[str, str], list[list[str]]] = {}
    for p in sorted(PEOPLE, key=lambda p: (p[3], p[4], int(p[2][5:-1]))):  # house numbers as numbers
        villages.setdefault((p[3], p[4]), []).append(p)
    return list(villages.values())


def _pdfs(app: App, run_id: int) -> Path:
    return app.config.base_dir / "letters" / f"run-{run_id}" / "pdf"


def test_one_pdf_per_village_one_page_per_resident_in_address_order(sent: tuple[App, int]) -> None:
    app, run_id = sent
    folder = _pdfs(app, run_id)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"{stem}{suffix}"
        for stem in ("01-城关镇-东村", "02-城关镇-南村", "03-河口乡-西村")
        for suffix in (".pdf", "-签收.pdf", "-签收.csv")
    )
    codes = _codes(app, run_id)
    for stem, people in zip(
        ("01-城关镇-东村", "02-城关镇-南村", "03-河口乡-西村"), _expected_order(), strict=True
    ):
        reader = PdfReader(folder / f"{stem}.pdf")
        assert len(reader.pages) == len(people)
        for page, (rid, name, addr, _, _, postcode) in zip(reader.pages, people, strict=True):
            assert [round(float(x) / MM) for x in page.mediabox.upper_right] == [210, 297]  # A4
            text = page.extract_text()
            assert f"{name} 收" in text and addr in text and f"居民编号 {rid}" in text
            assert (postcode in text) if postcode else ("4501" not in text.split("城关镇人民路")[1][:40])
            assert "某某县农业农村局" in text and "450001 城关镇人民路1号" in text  # sender, return address
            assert "农发〔2026〕12号" in text and "2026年4月1日" in text and "0371-12345678" in text
            assert display(codes[rid]) in text and f"{PUBLIC}/v" in text
            assert "2026年耕地地力保护补贴发放公示" in text  # the approved message itself
        roster = PdfReader(folder / f"{stem}-签收.pdf")
        roster_text = "".join(p.extract_text() for p in roster.pages)
        assert [n for _, n, *_ in people] == sorted(
            (p[1] for p in people), key=roster_text.index
        )  # same order as the letters
        with (folder / f"{stem}-签收.csv").open(encoding="utf-8-sig", newline="") as f:
            rows = list(csv.DictReader(f))
        assert [(r["居民编号"], r["姓名"], r["地址"], r["核验码"]) for r in rows] == [
            (rid, name, addr, display(codes[rid])) for rid, name, addr, *_ in people
        ]
        assert all(r["签收人"] == "" and r["签收日期"] == "" for r in rows)


def test_the_recipient_block_sits_in_the_envelope_window(sent: tuple[App, int]) -> None:
    """DL / C5 window: 20 mm from the left, 45 mm from the top, 85 x 40 mm."""
    app, run_id = sent
    page = PdfReader(_pdfs(app, run_id) / "01-城关镇-东村.pdf").pages[0]
    spots: dict[str, tuple[float, float]] = {}

    def visit(text: str, cm: Any, tm: Any, font: Any, size: Any) -> None:
        if text.strip():
            x, y = tm[4] * cm[0] + cm[4], tm[5] * cm[3] + cm[5]
            spots.setdefault(text.strip(), (x / MM, (A4_HEIGHT - y) / MM))

    page.extract_text(visitor_text=visit)
    for value in ("450101", "城关镇东村2号", "李四 收"):
        x, top = next(v for k, v in spots.items() if value in k)
        assert 19.9 <= x <= 20 + 85 and 45 <= top <= 45 + 40, (value, x, top)  # top: the baseline


def _fonts(page: Any) -> dict[str, tuple[dict[int, str], TTFont]]:
    """Each font of the page by resource name: its ToUnicode map (glyph id -> text) and its
    embedded program."""
    out = {}
    for name, ref in page["/Resources"]["/Font"].items():
        font = ref.get_object()
        descriptor = font["/DescendantFonts"][0].get_object()["/FontDescriptor"].get_object()
        program = next(descriptor[k] for k in ("/FontFile3", "/FontFile2", "/FontFile") if k in descriptor)
        tounicode: dict[int, str] = {}
        for line in font["/ToUnicode"].get_object().get_data().decode().splitlines():
            parts = line.strip().strip("<>").split("> <")
            if len(parts) == 2 and all(len(p) >= 4 for p in parts):
                tounicode[int(parts[0], 16)] = bytes.fromhex(parts[1]).decode("utf-16-be")
        out[name] = (tounicode, TTFont(io.BytesIO(program.get_object().get_data())))
    return out


@functools.lru_cache(maxsize=None)
def _source_glyph(char: str) -> str:
    fonts = TTCollection(str(NOTO / "NotoSerifCJK-Regular.ttc"), lazy=True).fonts
    font = next(f for f in fonts if f["name"].getDebugName(4).endswith("CJK SC"))
    return str(font.getBestCmap().get(ord(char), ".notdef"))


NOTO = Path("/usr/share/fonts/opentype/noto")  # Debian's fonts-noto-cjk: what the PDFs embed


@functools.lru_cache(maxsize=1)
def _substitutes() -> dict[str, set[str]]:
    """Glyph -> the glyphs Debian's Noto CJK SC fonts' GSUB single substitutions (locl for zh-CN
    and the like) may draw for it; subsets keep glyph ids and names (cidNNNNN) but drop GSUB."""
    out: dict[str, set[str]] = {}
    for ttc in sorted(NOTO.glob("Noto*CJK-*.ttc")):
        for font in TTCollection(str(ttc), lazy=True).fonts:
            if not font["name"].getDebugName(4).endswith(("CJK SC", "CJK SC Bold")):
                continue
            for lookup in font["GSUB"].table.LookupList.Lookup:
                for sub in lookup.SubTable:
                    for a, b in getattr(getattr(sub, "ExtSubTable", sub), "mapping", {}).items():
                        out.setdefault(a, set()).add(b)
    return out


_TEXT_OPS = re.compile(rb"/([^\s/\[<(]+)\s+[-\d.]+\s+Tf|<([0-9a-fA-F]+)>")


def _drawn(page: Any) -> set[tuple[str, int]]:
    """(font, glyph id) of every glyph the page's content stream draws: WeasyPrint writes text as
    hex strings of 2-byte glyph ids (Identity-H) after the `Tf` choosing their font."""
    drawn, font = set(), ""
    for match in _TEXT_OPS.finditer(page.get_contents().get_data()):
        if match[1]:
            font = "/" + match[1].decode()
        else:
            raw = bytes.fromhex(match[2].decode())
            drawn |= {(font, int.from_bytes(raw[i : i + 2], "big")) for i in range(0, len(raw), 2)}
    return drawn


def test_every_character_is_drawn_from_an_embedded_font_that_has_its_glyph(sent: tuple[App, int]) -> None:
    app, run_id = sent
    for pdf in sorted(_pdfs(app, run_id).glob("*.pdf")):
        reader = PdfReader(pdf)
        for page in reader.pages:
            fonts, covered = _fonts(page), set()
            for name, gid in _drawn(page):
                tounicode, font = fonts[name]
                char = tounicode[gid]
                assert gid != 0, f"{pdf.name}: {char!r} drawn as .notdef (a box)"
                order, cmap = font.getGlyphOrder(), font.getBestCmap()
                # The embedded font maps the character to the glyph drawn, or the glyph drawn is the
                # source font's substitute for the character's glyph (figures under zh-CN locl).
                glyph = order[gid]
                assert cmap.get(ord(char)) == glyph or glyph in _substitutes().get(
                    _source_glyph(char), set()
                ), (pdf.name, char, glyph)
                if "CFF " in font and not char.isspace():  # ... and it has an outline
                    charstrings = font["CFF "].cff.topDictIndex[0].CharStrings
                    assert charstrings[order[gid]].calcBounds(charstrings) is not None, (pdf.name, char)
                covered.add(char)
            text = {c for c in page.extract_text() if not c.isspace()}
            assert len(text) > 20 and text - covered == set(), (pdf.name, text - covered)


def test_the_qr_code_is_segnos_encoding_of_the_verification_url(sent: tuple[App, int]) -> None:
    app, run_id = sent
    codes = _codes(app, run_id)
    reader = PdfReader(_pdfs(app, run_id) / "03-河口乡-西村.pdf")
    for page, (rid, *_) in zip(reader.pages, _expected_order()[2], strict=True):
        (name,) = re.findall(rb"/([^\s/]+) Do", page.get_contents().get_data())  # the one image it draws
        image = next(i for i in page.images if i.name.rsplit(".", 1)[0] == name.decode())
        expected = [[int(b) for b in row] for row in qr_code(f"{PUBLIC}/v/{codes[rid]}").matrix]
        pixels = image.image.convert("L")
        n = len(expected)
        assert pixels.size == (n + 8, n + 8)  # one pixel per module and the 4-module quiet zone
        got = [[int(pixels.getpixel((x + 4, y + 4)) < 128) for x in range(n)] for y in range(n)]
        assert got == expected
        assert image.indirect_reference.get_object()["/Interpolate"].value is False  # printed unsmoothed
