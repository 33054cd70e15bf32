"""PDF letters benchmark: a run of --residents letters through the letter provider, against a bare
WeasyPrint floor measured in the same run on the same machine.

  ours   LetterProvider.send for every resident (HTML page + .letter file each), then close():
         the run's HTML file and roster, then one PDF per village with its 签收 roster PDF and CSV,
         villages rendered in --workers processes (0: one per core)
  floor  WeasyPrint alone: one static A4 page of the same size of Chinese text, no QR code,
         rendered --floor-pages times into one PDF per process, in as many processes at once;
         measured before and after ours (the machine is shared), their total reported

Pages per second count letter pages only (the rosters are extra work on top, included in the time).
Ratio = ours / floor as throughput: 1.0 means as fast as WeasyPrint on a static page.
Aim: >= 50 letter pages/s for a 5,000-resident run on this machine (both cores).

    python bench/letters.py [--residents 5000] [--villages 40] [--workers 0] [--floor-pages 200] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from notifier.channels.base import OutboundMessage, ProviderContext  # noqa: E402
from notifier.channels.letter import LetterProvider  # noqa: E402
from notifier.channels.letter.pdf import LETTER_CSS  # noqa: E402
from notifier.status import Channel  # noqa: E402
from notifier.verification import DeliveryIdentity, Verifier  # noqa: E402

BODY = (
    "<h1>2026年耕地地力保护补贴发放公示</h1><p>{name}（{town}{village}）：</p>"
    "<p>您家承包耕地 {mu} 亩，2026年耕地地力保护补贴标准为每亩 ¥110.00，预计补贴金额 "
    "<strong>¥{amount}</strong>，将打入您的惠农资金账户。</p>"
    "<p>如对面积或金额有异议，请在公示期内向{town}农业服务中心反映。本通知可登录 "
    'https://example.gov.cn/zwgk/2026/gdbt 核实。</p><p class="sign">县农业农村局<br>2026年4月1日</p>'
)
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英"


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def messages(n: int, villages: int) -> list[OutboundMessage]:
    codes = Verifier("bench-verification-secret-0123456789", "https://notice.example.gov.cn")
    out = []
    for i in range(n):
        town = f"{'城关河口东关西关'[2 * (i % 4) : 2 * (i % 4) + 2]}镇"
        village = f"第{(i % villages) + 1}村"
        name = SURNAMES[i % len(SURNAMES)] + GIVEN[(i // 7) % len(GIVEN)] + GIVEN[(i // 3) % len(GIVEN)]
        mu = 1 + i % 9
        rid = f"R{i:07d}"
        code = codes.code(DeliveryIdentity("farm-subsidy-2026", rid, "letter"))
        out.append(
            OutboundMessage(
                delivery_id=i + 1,
                run_id=1,
                channel=Channel.LETTER,
                resident_id=rid,
                recipient=f"{town}{village}{(i * 37) % 300 + 1}号",
                recipient_name=name,
                body=BODY.format(name=name, town=town, village=village, mu=mu, amount=f"{mu * 110}.00"),
                meta={
                    "township": town,
                    "village": village,
                    "title": "2026年耕地地力保护补贴发放公示",
                    "department": "县农业农村局",
                    "document_no": "农发〔2026〕12号",
                    "on_date": "2026-04-01",
                    "postcode": "450100",
                    "verify_code": code,
                },
            )
        )
    return out


async def bench_ours(work: Path, n: int, villages: int, workers: int) -> dict[str, float]:
    msgs = messages(n, villages)
    provider = LetterProvider(
        "letter",
        {
            "dir": "letters",
            "workers": workers,
            "sender": "某某县农业农村局",
            "return_address": "城关镇人民路1号",
        },
        ProviderContext(work, "bench", "https://notice.example.gov.cn"),
    )
    await provider.open()
    t0 = time.perf_counter()
    for m in msgs:
        await provider.send(m)
    t1 = time.perf_counter()
    await provider.close()
    t2 = time.perf_counter()
    pdfs = sorted((work / "letters" / "run-1" / "pdf").glob("*.pdf"))
    from pypdf import PdfReader

    letter_files = [p for p in pdfs if not p.name.endswith("-签收.pdf")]
    pages = sum(len(PdfReader(p).pages) for p in letter_files)
    assert pages == n, (pages, n)
    size = sum(p.stat().st_size for p in letter_files)
    return {
        "letters": n,
        "villages": len(letter_files),
        "send_seconds": t1 - t0,
        "assemble_seconds": t2 - t1,
        "pages_per_second": rate(n, t2 - t0),
        "bytes_per_page": size / n,
        "roster_bytes": sum(p.stat().st_size for p in pdfs) - size,
    }


def _static_pages(args: tuple[int, str]) -> int:
    from weasyprint import HTML

    pages, out = args
    body = BODY.format(name="王芳", town="城关镇", village="第1村", mu=5, amount="550.00")
    page = f'<section class="letter"><div class="text">{body}</div></section>'
    source = (
        f"<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'><style>{LETTER_CSS}</style></head>"
    )
    HTML(string=source + "<body>" + page * pages + "</body></html>").write_pdf(out)
    return pages


def bench_floor(work: Path, pages: int, workers: int) -> dict[str, float]:
    jobs = [(pages, str(work / f"floor-{i}.pdf")) for i in range(workers)]
    _static_pages((1, str(work / "warm.pdf")))  # fonts found and cached, as ours has by then
    t0 = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        done = sum(pool.map(_static_pages, jobs))
    seconds = time.perf_counter() - t0
    size = sum(Path(out).stat().st_size for _, out in jobs)
    return {
        "pages": done,
        "seconds": seconds,
        "pages_per_second": rate(done, seconds),
        "bytes_per_page": size / done,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--residents", type=int, default=5000)
    ap.add_argument("--villages", type=int, default=40)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--floor-pages", type=int, default=200)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    workers = args.workers or os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="bench-letters-") as tmp:
        work = Path(tmp)
        before = bench_floor(work, args.floor_pages, workers)
        ours = asyncio.run(bench_ours(work / "ours", args.residents, args.villages, args.workers))
        after = bench_floor(work, args.floor_pages, workers)  # the machine is shared: floor on both sides
    floor = {
        "pages": before["pages"] + after["pages"],
        "seconds": before["seconds"] + after["seconds"],
        "pages_per_second": rate(before["pages"] + after["pages"], before["seconds"] + after["seconds"]),
        "pages_per_second_before": before["pages_per_second"],
        "pages_per_second_after": after["pages_per_second"],
        "bytes_per_page": (before["bytes_per_page"] + after["bytes_per_page"]) / 2,
    }
    result = {
        "workers": workers,
        "ours": ours,
        "floor": floor,
        "ratio": ours["pages_per_second"] / floor["pages_per_second"],
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"letters: {args.residents} residents, {ours['villages']} villages, {workers} worker processes")
    print(
        f"  ours   {ours['pages_per_second']:8.1f} pages/s  (send {ours['send_seconds']:.1f} s, "
        f"assemble {ours['assemble_seconds']:.1f} s)  {ours['bytes_per_page'] / 1024:.1f} KiB/page"
    )
    print(
        f"  floor  {floor['pages_per_second']:8.1f} pages/s  (WeasyPrint static page, {floor['pages']}) "
        f"{floor['bytes_per_page'] / 1024:.1f} KiB/page"
    )
    print(f"  (before {floor['pages_per_second_before']:.1f}, after {floor['pages_per_second_after']:.1f})")
    print(f"  ratio  {result['ratio']:.2f}   aim: >= 50 pages/s")


if __name__ == "__main__":
    main()
