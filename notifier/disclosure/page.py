"""The public website view of 公示 lists: `/lists` (the lists in their 公示期), `/lists/{id}`
(the page exactly as published) and `/lists/{id}.pdf` (the PDF, refused if it changed since).

A list past its validity stays readable at its address, with an "已过公示期" banner above the
published page, but leaves the index of current lists. Which day it is comes from `today`
(the county's date by default), so the tests pass a day. Outside the console's login, before
its mount; the stored page carries its own style, so it is served with a CSP of its own that
allows that inline style and images from data URIs, and nothing else.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from ..app import App
from ..clock import local_today
from ..console.security import HEADERS
from ..errors import NotFound
from .publish import list_pdf_bytes, published_list, published_lists
from .render import with_banner

PAGE_HEADERS = HEADERS | {
    "content-security-policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "cache-control": "no-cache",
}


class ListsPage:
    """The public routes of published lists."""

    def __init__(self, app: App, env: jinja2.Environment, today: Callable[[], date] | None = None) -> None:
        self.app, self.env = app, env
        self.today = today or (lambda: local_today(app.config.timezone))

    def endpoints(self) -> dict[str, Callable[[Request], Awaitable[Response]]]:
        """GET endpoints by path (web.py routes them, before the console's mount)."""
        return {"/lists": self.index, "/lists/{list:int}.pdf": self.pdf, "/lists/{list:int}": self.show}

    async def index(self, request: Request) -> Response:
        today = self.today()
        lists = await run_in_threadpool(published_lists, self.app)
        current = [x for x in lists if x.state(today) == "current"]
        html = self.env.get_template("lists_public.html").render(
            request=request, account=None, menu=[], lists=current
        )
        return HTMLResponse(html, headers=HEADERS)

    async def show(self, request: Request) -> Response:
        try:
            item, page = await run_in_threadpool(published_list, self.app, request.path_params["list"])
        except NotFound:
            return self._missing(request)
        if item.state(self.today()) == "expired":
            page = with_banner(page)
        return HTMLResponse(page, headers=PAGE_HEADERS)

    async def pdf(self, request: Request) -> Response:
        try:
            item, _ = await run_in_threadpool(published_list, self.app, request.path_params["list"])
            data = await run_in_threadpool(list_pdf_bytes, self.app, item)
        except NotFound:
            return self._missing(request)
        name = f"public-list-{item.id}.pdf"
        return Response(
            data,
            media_type="application/pdf",
            headers=HEADERS | {"content-disposition": f'inline; filename="{name}"'},
        )

    def _missing(self, request: Request) -> Response:
        html = self.env.get_template("lists_public.html").render(
            request=request, account=None, menu=[], lists=None
        )
        return HTMLResponse(html, status_code=404, headers=HEADERS)
