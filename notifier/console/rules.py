"""规则 pages: every rule (item, window, schedule, version, approval, channels, check problems);
one rule's preview for a date (counts, channels, SMS segments and cost, masked samples per
channel); explain for one resident, found by 居民编号 or a masked search; the review queue (the
residents it cannot decide, with the fill-in sheet to download; the filled sheet goes back through
花名册导入's check-then-confirm). The same services as `notifier rules check / preview / explain
/ review`. The list never reads the register: counts are computed when one rule is opened, for
that rule only."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import date
from html.parser import HTMLParser
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..clock import local_today
from ..errors import InputError, NotFound, NotifierError, Problem
from ..i18n.patterns import translate
from ..identity import Account, Permission
from ..letterproof import letter_proof
from ..preview import Preview, Sample, explain, preview
from ..residents.search import search_residents
from ..rulebook import CheckCache, RuleEntry, rulebook
from ..rules.load import find_rule
from ..rules.reviewqueue import review_queue
from ..rules.reviewsheet import write_sheet
from ..status import Channel
from .pages import Pages

PATH = "/rules"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
SAMPLES = 2
"""Sample messages shown per channel."""
SHOWN_WAITING = 200
"""Residents the review page lists; the counts and the downloaded sheet cover all of them."""
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
RESULTS = {"match": "Match", "no_match": "No match", "review": "Needs review"}
OUTCOMES = {"pass": "Met", "fail": "Not met", "unknown": "Unknown (data missing)"}
"""Message ids of an explanation's result and of each condition's outcome."""


@dataclass(frozen=True)
class Opened:
    """A rule as its pages show it: its entry and check problems, or (`broken`) the problems
    that keep its file from loading."""

    rule_id: str
    entry: RuleEntry | None
    problems: list[dict[str, Any]]
    broken: bool


def routes(pages: Pages) -> list[Route]:
    app = pages.app
    language = app.config.ui.language
    cache = CheckCache()

    def shown(found: list[Problem]) -> list[dict[str, Any]]:
        """Problems as the page lists them: file name, line, the message translated."""
        return [
            {"file": (p.file or "").rsplit("/", 1)[-1], "line": p.line, "message": tr(p.message)}
            for p in found
        ]

    def tr(message: str) -> str:
        return translate(message, language)

    def open_rule(rule_id: str) -> Opened:
        book = rulebook(app, cache)
        entry = book.entry(rule_id)
        if entry is not None:
            return Opened(rule_id, entry, shown(book.problems_of(entry.rule)), False)
        try:  # says why: no such rule (NotFound), or its file has errors (RuleError)
            find_rule(rule_id, app.config.rules_dir, app.dictionary, app.config.templates_dir)
        except NotFound:
            raise
        except NotifierError as exc:
            return Opened(rule_id, None, shown(getattr(exc, "problems", []) or [Problem(exc.message)]), True)
        raise NotFound(f"no rule {rule_id!r}")  # loaded meanwhile: the next request shows it

    async def opened(request: Request, account: Account) -> Opened | Response:
        try:
            return await run_in_threadpool(open_rule, request.path_params["name"])
        except NotFound:
            return pages.render(request, "error.html", account, 404, message_id="not_found")

    def day(request: Request) -> date | None:
        """The date asked for (default: today in the configured timezone); None if unreadable."""
        text = (request.query_params.get("on") or "").strip()
        if not text:
            return local_today(app.config.timezone)
        try:
            return date.fromisoformat(text)
        except ValueError:
            return None

    async def listing(request: Request, account: Account) -> Response:
        book = await run_in_threadpool(rulebook, app, cache)
        return pages.render(
            request, "rules.html", account, book=book, problems=shown(book.problems), local=pages.local
        )

    async def detail(request: Request, account: Account) -> Response:
        got = await opened(request, account)
        if isinstance(got, Response):
            return got
        on = day(request)
        result: Preview | None = None
        if got.entry is not None and on is not None:
            rule = got.entry.rule
            result = await run_in_threadpool(lambda: preview(app, rule, on, SAMPLES, per_channel=True))
        sms = app.config.channels.get(Channel.SMS)
        return pages.render(
            request,
            "rule.html",
            account,
            409 if got.broken else 400 if on is None else 200,
            it=got,
            on=on,
            preview=result,
            warnings=[translate(w, language) for w in result.warnings] if result else [],
            samples=_by_channel(result.samples, language) if result else [],
            price=sms.price_per_segment if sms else 0.0,
            local=pages.local,
        )

    async def explanation(request: Request, account: Account) -> Response:
        got = await opened(request, account)
        if isinstance(got, Response):
            return got
        q = request.query_params
        form = {k: q.get(k, "").strip() for k in ("resident", "name", "village")}
        on, status = day(request), 200
        result = found = error = None
        if got.entry is None:
            status = 409
        elif on is None:
            error, status = "date", 400
        elif form["resident"]:
            rule, resident = got.entry.rule, form["resident"]
            try:
                result = await run_in_threadpool(explain, app, rule, resident, on)
            except NotFound:
                error, status = "no_resident", 404
        elif form["name"] or form["village"]:
            try:
                found = await run_in_threadpool(search_residents, app, form["name"], form["village"])
            except InputError:
                error, status = "no_name", 400
        return explained(request, account, status, got, on, form, error, result=result, found=found)

    def explained(
        request: Request,
        account: Account,
        status: int,
        got: Any,
        on: Any,
        form: dict[str, str],
        error: str | None,
        result: Any = None,
        found: Any = None,
    ) -> Response:
        """The explain page (解释), for an explanation and for a letter proof that could not be made."""
        return pages.render(
            request,
            "explain.html",
            account,
            status,
            it=got,
            on=on,
            form=form,
            result=result,
            found=found,
            error=error,
            results=RESULTS,
            outcomes=OUTCOMES,
        )

    async def proof(request: Request, account: Account) -> Response:
        """One resident's letter as a PDF proof (样张); its name and address are in full, so
        each proof is audited. Anything wrong answers the explain page saying what."""
        got = await opened(request, account)
        if isinstance(got, Response):
            return got
        resident, on = request.query_params.get("resident", "").strip(), day(request)
        error, status = None, 400
        if got.entry is None:
            status = 409
        elif on is None:
            error = "date"
        elif resident:
            rule = got.entry.rule
            try:
                pdf = await run_in_threadpool(letter_proof, app, rule, resident, on, account.actor)
            except NotFound:
                error, status = "no_resident", 404
            except InputError:
                error, status = "no_letter", 409
            else:
                name = _UNSAFE.sub("_", f"{rule.id}-{resident}-proof.pdf")  # a header: ASCII only
                return Response(
                    pdf,
                    media_type="application/pdf",
                    headers={"content-disposition": f'inline; filename="{name}"'},
                )
        form = {"resident": resident, "name": "", "village": ""}
        return explained(request, account, status, got, on, form, error)

    async def review(request: Request, account: Account) -> Response:
        """The residents the rule cannot decide on the date, the first SHOWN_WAITING of them listed."""
        got = await opened(request, account)
        if isinstance(got, Response):
            return got
        on, queue = day(request), None
        if got.entry is not None and on is not None:
            rule = got.entry.rule
            queue = await run_in_threadpool(review_queue, app, rule, on, SHOWN_WAITING)
        return pages.render(
            request,
            "review.html",
            account,
            409 if got.broken else 400 if on is None else 200,
            it=got,
            on=on,
            queue=queue,
            may_import=account.can(Permission.IMPORT),
        )

    async def review_sheet(request: Request, account: Account) -> Response:
        got = await opened(request, account)
        if isinstance(got, Response):
            return got
        on = day(request)
        if got.entry is None or on is None:
            return await review(request, account)
        rule, buffer = got.entry.rule, io.BytesIO()
        await run_in_threadpool(write_sheet, app, rule, on, buffer)
        return Response(
            buffer.getvalue(),
            media_type=XLSX,
            headers={"Content-Disposition": f'attachment; filename="review-{rule.id}-{on.isoformat()}.xlsx"'},
        )

    return [
        Route(PATH, pages.page(Permission.RULES_READ, listing), methods=["GET"]),
        Route(PATH + "/{name:str}", pages.page(Permission.RULES_READ, detail), methods=["GET"]),
        Route(PATH + "/{name:str}/explain", pages.page(Permission.RULES_READ, explanation), methods=["GET"]),
        Route(PATH + "/{name:str}/proof", pages.page(Permission.RULES_READ, proof), methods=["GET"]),
        Route(PATH + "/{name:str}/review", pages.page(Permission.RULES_READ, review), methods=["GET"]),
        Route(
            PATH + "/{name:str}/review.xlsx", pages.page(Permission.RULES_READ, review_sheet), methods=["GET"]
        ),
    ]


def _by_channel(samples: list[Sample], language: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """The samples grouped by channel in the order sms, email, letter; a letter as its text."""
    out = []
    for ch in Channel:
        of = [_sample(s, language) for s in samples if s.channel == ch.value]
        if of:
            out.append((ch.value, of))
    return out


def _sample(s: Sample, language: str) -> dict[str, Any]:
    error = (
        [translate(line.strip(), language) for line in s.error.splitlines() if line.strip()]
        if s.error is not None
        else None
    )
    body = _text_of(s.body) if s.channel == Channel.LETTER.value and error is None else s.body
    return {
        "resident": s.resident,
        "subject": s.subject,
        "body": body,
        "segments": s.segments,
        "error": error,
    }


_WRAPPED = re.compile(r"[ \t]*\n\s*")


class _Text(HTMLParser):
    BREAKS = frozenset({"p", "br", "div", "h1", "h2", "h3", "li", "tr"})

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.BREAKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(_WRAPPED.sub("", data))  # a line break inside a paragraph of Chinese text


def _text_of(html: str) -> str:
    """A letter's HTML as the text a reader sees (the page shows no template markup as HTML)."""
    parser = _Text()
    parser.feed(html)
    parser.close()
    lines = (line.strip() for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)
