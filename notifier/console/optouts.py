"""退订 page: the SMS opt-out list (masked), adding and removing a number with a reason (audited)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..errors import InputError
from ..identity import Account, Permission
from ..masking import mask_phone
from ..optouts import add_opt_out, list_opt_outs, parse_phone, remove_opt_out
from .pages import Pages

PATH = "/optouts"


def routes(pages: Pages) -> list[Route]:
    async def listing(
        request: Request, account: Account, status: int = 200, error: str | None = None
    ) -> Response:
        total, rows = await run_in_threadpool(list_opt_outs, pages.app)
        shown = [(mask_phone(r.phone), r.source, pages.local(r.created_at)) for r in rows]
        done = request.query_params.get("done") if error is None else None
        return pages.render(
            request, "optouts.html", account, status, total=total, rows=shown, done=done, error=error
        )

    async def show(request: Request, account: Account) -> Response:
        return await listing(request, account)

    async def change(request: Request, account: Account) -> Response:
        form = await request.form()
        action, reason = str(form.get("action") or ""), str(form.get("reason") or "").strip()
        try:
            phone = parse_phone(str(form.get("phone") or ""))
        except InputError:
            return await refuse(request, account, "phone")
        if not reason:
            return await refuse(request, account, "reason")
        if action == "add":
            done = await run_in_threadpool(
                lambda: add_opt_out(
                    pages.app,
                    phone,
                    source=f"console: {reason}",
                    actor=account.actor,
                    detail={"reason": reason},
                )
            )
            key = "added" if done else "already"
        else:
            done = await run_in_threadpool(
                lambda: remove_opt_out(pages.app, phone, actor=account.actor, reason=reason)
            )
            key = "removed" if done else "absent"
        return RedirectResponse(f"{PATH}?done={key}", status_code=303)

    async def refuse(request: Request, account: Account, error: str) -> Response:
        return await listing(request, account, 400, error=error)

    return [
        Route(PATH, pages.page(Permission.OPTOUTS, show), methods=["GET"]),
        Route(PATH, pages.page(Permission.OPTOUTS, change), methods=["POST"]),
    ]
