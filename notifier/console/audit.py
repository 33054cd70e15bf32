"""审计 pages: chain status (verify, last checkpoint), one resident's history, coverage of a run
and the audit log as CSV/XLSX downloads (masked). Read-only: auditors change nothing here."""

from __future__ import annotations

import tempfile
from pathlib import Path

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from ..audit.checkpoints import verification
from ..audit.coverage import resident_history, write_coverage
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
        return pages.render(
            request,
            "audit.html",
            account,
            check=check.as_json(),
            resident=resident,
            history=history,
            missing=missing,
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


def _run_id(text: str | None) -> int | None:
    return int(text) if text and text.isascii() and text.isdigit() else None


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.parent.rmdir()
