"""公示名单 page: the published public lists (with their period and state), and publishing one
for a rule's latest approved or completed run (operators, `lists.publish`), acting as the
logged-in account through the same service as `notifier lists publish`."""

from __future__ import annotations

from datetime import date

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..clock import local_today
from ..disclosure import DEFAULT_DAYS, publish_list, published_lists
from ..errors import NotifierError
from ..i18n import error_text
from ..identity import Account, Permission
from ..rules.load import find_rule, load_rules, rule_files
from .pages import Pages

PATH = "/disclosure"  # /lists itself is the public website view (disclosure/page.py)


def routes(pages: Pages) -> list[Route]:
    app = pages.app

    def rules() -> list[str]:
        found, _ = load_rules(rule_files(app.config.rules_dir), app.dictionary, app.config.templates_dir)
        return sorted(found)

    async def index(
        request: Request, account: Account, status: int = 200, error: str | None = None
    ) -> Response:
        today = local_today(app.config.timezone)
        lists = await run_in_threadpool(published_lists, app)
        names = await run_in_threadpool(rules) if account.can(Permission.LISTS_PUBLISH) else []
        return pages.render(
            request,
            "disclosure.html",
            account,
            status,
            lists=[(x, x.state(today)) for x in lists],
            rules=names,
            error=error,
            today=today.isoformat(),
            days=DEFAULT_DAYS,
            done=request.query_params.get("done"),
        )

    async def listing(request: Request, account: Account) -> Response:
        return await index(request, account)

    async def publish(request: Request, account: Account) -> Response:
        form = request.state.form
        try:
            on = date.fromisoformat(str(form.get("on") or ""))
            days = int(str(form.get("days") or DEFAULT_DAYS))
        except ValueError:
            return await index(request, account, 400, "date")
        try:
            rule = await run_in_threadpool(
                find_rule,
                str(form.get("rule") or ""),
                app.config.rules_dir,
                app.dictionary,
                app.config.templates_dir,
            )
            done = await run_in_threadpool(lambda: publish_list(app, rule, on, account.actor, days=days))
        except NotifierError as exc:
            return await index(request, account, 400, error_text(exc, app.config.ui.language))
        return RedirectResponse(f"{PATH}?done={done.id}", status_code=303)

    return [
        Route(PATH, pages.page(Permission.RUNS_READ, listing), methods=["GET"]),
        Route(PATH, pages.page(Permission.LISTS_PUBLISH, publish), methods=["POST"]),
    ]
