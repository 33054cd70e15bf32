"""花名册导入 pages: upload a CSV or XLSX roster, check it, confirm (or cancel) the import.

Like GOV.UK Notify's CSV check: the upload is kept privately (uploads.py) and checked by the
import service itself in dry-run mode (`import_residents(..., dry_run=True)`, what `residents
import --dry-run` runs): counts, the column mapping, rows and cells in error, warnings. Nothing
is written until the operator confirms; the confirmation imports the kept file as the
logged-in account (audited as the CLI's import is) and deletes it, and so does a cancel.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..errors import InputError, NotifierError
from ..identity import Account, Permission
from ..residents.importer import ImportReport, import_residents
from .importcheck import check_view, file_problem
from .multipart import Received, Refusal, receive
from .pages import Pages
from .security import csrf_ok, csrf_token
from .uploads import UploadStore

PATH = "/import"
SUFFIXES = (".csv", ".xlsx", ".xlsm", ".txt")  # what the importer reads (residents/readers.py)
FILE_FIELD = "roster"


def routes(pages: Pages) -> list[Route]:
    app = pages.app
    settings = app.config.console
    limit = int(settings.max_upload_mb * 1024 * 1024)
    store = UploadStore(app.config.resolve_path(settings.upload_dir))
    store.sweep()
    language = app.config.ui.language
    specs = app.dictionary.all_fields()

    def form_page(request: Request, account: Account, status: int = 200, **ctx: Any) -> Response:
        for key in ("error", "filename", "problem", "token"):
            ctx.setdefault(key, None)
        ctx.setdefault("done", request.query_params.get("done"))
        return pages.render(
            request, "import.html", account, status, max_mb=f"{settings.max_upload_mb:g}", **ctx
        )

    async def read_upload(request: Request) -> Mapping[str, Any]:
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            return await request.form()  # not an upload: the handler says to choose a file
        await run_in_threadpool(store.sweep)
        return await receive(
            request,
            file_field=FILE_FIELD,
            limit=limit,
            suffixes=SUFFIXES,
            may_store=lambda fields: csrf_ok(request, fields.get("csrf")),
            target=store.target,
        )

    async def show_form(request: Request, account: Account) -> Response:
        await run_in_threadpool(store.sweep)
        return form_page(request, account)

    async def upload(request: Request, account: Account) -> Response:
        received = request.state.form
        if not isinstance(received, Received):
            return form_page(request, account, 400, error=Refusal.NO_FILE.value)
        if received.refused is not None or received.file is None:
            if received.file is not None:
                await run_in_threadpool(store.discard, received.file.parent)
            why = received.refused or Refusal.NO_FILE
            return form_page(
                request,
                account,
                413 if why is Refusal.TOO_BIG else 400,
                error=why.value,
                filename=received.filename,
            )
        kept = await run_in_threadpool(store.seal, received.file, account.id, csrf_token(request))
        return RedirectResponse(f"{PATH}/{kept.token}", status_code=303)

    def gone(request: Request, account: Account) -> Response:
        return form_page(request, account, 404, error="gone")

    async def check(request: Request, account: Account) -> Response:
        kept = await run_in_threadpool(
            store.find, request.path_params["upload"], account.id, csrf_token(request)
        )
        if kept is None:
            return gone(request, account)
        try:
            report = await run_in_threadpool(
                lambda: import_residents(app, kept.file, dry_run=True, actor=account.actor)
            )
        except InputError as exc:  # the whole file is refused: nothing to confirm
            await run_in_threadpool(store.discard, kept.folder)
            why = file_problem(exc.message, str(kept.file), kept.name, language)
            return form_page(request, account, 400, error="file", problem=why, filename=kept.name)
        except NotifierError as exc:
            why = file_problem(exc.message, str(kept.file), kept.name, language)
            return form_page(request, account, 409, error="failed", problem=why, token=kept.token)
        return result_page(request, account, report, kept.name, token=kept.token)

    def result_page(
        request: Request, account: Account, report: ImportReport, name: str, token: str | None = None
    ) -> Response:
        view = check_view(report, name, specs, language)
        return pages.render(request, "import_check.html", account, view=view, token=token)

    async def confirm(request: Request, account: Account) -> Response:
        token = request.path_params["upload"]
        kept = await run_in_threadpool(store.find, token, account.id, csrf_token(request))
        claimed = await run_in_threadpool(store.claim, kept) if kept is not None else None
        if claimed is None:  # unknown, another session's, expired, or confirmed already
            return gone(request, account)
        try:
            report = await run_in_threadpool(lambda: import_residents(app, claimed.file, actor=account.actor))
        except InputError as exc:
            await run_in_threadpool(store.discard, claimed.folder)
            why = file_problem(exc.message, str(claimed.file), claimed.name, language)
            return form_page(request, account, 400, error="file", problem=why, filename=claimed.name)
        except NotifierError as exc:  # rolled back (a busy database): kept, to be tried again
            await run_in_threadpool(store.release, claimed)
            why = file_problem(exc.message, str(claimed.file), claimed.name, language)
            return form_page(request, account, 409, error="failed", problem=why, token=token)
        await run_in_threadpool(store.discard, claimed.folder)
        return result_page(request, account, report, claimed.name)

    async def cancel(request: Request, account: Account) -> Response:
        kept = await run_in_threadpool(
            store.find, request.path_params["upload"], account.id, csrf_token(request)
        )
        if kept is not None:
            await run_in_threadpool(store.discard, kept.folder)
        return RedirectResponse(f"{PATH}?done=cancelled", status_code=303)

    one = PATH + "/{upload:str}"
    return [
        Route(PATH, pages.page(Permission.IMPORT, show_form), methods=["GET"]),
        Route(PATH, pages.page(Permission.IMPORT, upload, read_form=read_upload), methods=["POST"]),
        Route(one, pages.page(Permission.IMPORT, check), methods=["GET"]),
        Route(one + "/confirm", pages.page(Permission.IMPORT, confirm), methods=["POST"]),
        Route(one + "/cancel", pages.page(Permission.IMPORT, cancel), methods=["POST"]),
    ]
