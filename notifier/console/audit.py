"""审计 pages: chain status (verify, last checkpoint), one resident's history, a run's coverage
(on the page and as a download) and the audit log as CSV/XLSX downloads (masked). Read-only:
auditors change nothing here."""

from __future__ import annotations

import tempfile
from pathlib import Path

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from ..app import App
from ..audit.checkpoints import verification
from ..audit.coverage import Coverage, coverage, resident_history, write_coverage
from ..audit.export import ExportFilter, export_events
from ..errors import NotFound
from ..identity import Account, Permission
from .pages import Pages

PATH = "/audit"
FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def routes(pages: Pages) -> list[Route]:
    app = pages.app

    async def overview(request: Request, account: Account) -> Response:
        check = await run_in_threadpool(verification, app)
        resident = (request.query_params.get("resident") or "").strip()
        history, missing = None, False
        if resident:
            try:
                history = await run_in_threadpool(resident_history, app, resident)
            except NotFound:
                missing = True
        run_id = _run_id(request.query_params.get("run"))
        summary, no_run = None, False
        if run_id is not None:
            try:
                summary = (await run_in_threadpool(_coverage, app, run_id)).as_json()
            except NotFound:
                no_run = True
        return pages.render(
            request,
            "audit.html",
            account,
            check=check.as_json(),
            resident=resident,
            history=history,
            missing=missing,
            run=run_id,
            coverage=summary,
            no_run=no_run,
            local=pages.local,
        )

    async def download(request: Request, account: Account) -> Response:
        what, fmt = request.path_params["what"], request.query_params.get("format", "csv")
        if fmt not in FORMATS:
            return Response("format must be csv or xlsx", status_code=400)
        tmp = Path(tempfile.mkdtemp(prefix="notifier-export-")) / f"{what}.{fmt}"
        if what == "events":
            await run_in_threadpool(export_events, app, tmp, fmt, ExportFilter(None, None, None, None))
            name = f"audit-events.{fmt}"
        else:
            run_id = _run_id(request.query_params.get("run"))
            if run_id is None:
                return Response("run must be a number", status_code=400)
            try:
                await run_in_threadpool(write_coverage, app, run_id, tmp, fmt)
            except NotFound:
                return Response(f"no run {run_id}", status_code=404)
            name = f"coverage-run-{run_id}.{fmt}"
        return FileResponse(
            tmp, media_type=FORMATS[fmt], filename=name, background=BackgroundTask(_remove, tmp)
        )

    return [
        Route(PATH, pages.page(Permission.AUDIT_READ, overview), methods=["GET"]),
        Route(PATH + "/{what:str}.download", pages.page(Permission.EXPORT, download), methods=["GET"]),
    ]


def _coverage(app: App, run_id: int) -> Coverage:
    """The run's coverage totals (they fill in as its per-resident stream is read)."""
    cov, rows = coverage(app, run_id)
    for _ in rows:
        pass
    return cov


def _run_id(text: str | None) -> int | None:
    return int(text) if text and text.isascii() and text.isdigit() else None


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.parent.rmdir()
