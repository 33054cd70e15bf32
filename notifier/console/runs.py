"""发送批次 pages: runs with their status and the review queue of my level, creating one, the
review of one run (counts, the rule diff since the last approved run, the stored sample
messages, approvals) with approve / reject (with a comment), cancel and retry failed, and each
recipient's status. The same services as the CLI (runs/, delivery/retry.py), acting as the
logged-in account."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..actors import same_actor
from ..clock import local_today
from ..delivery.retry import retry_failed
from ..errors import NotFound, NotifierError, PermissionDenied
from ..i18n import error_text
from ..identity import Account, Permission
from ..identity.accounts import refused
from ..identity.permissions import approval_gate
from ..rules.load import find_rule, load_rules, rule_files
from ..runs import (
    approve_run,
    cancel_run,
    create_run,
    list_runs,
    rule_diff,
    run_deliveries,
    run_messages_page,
    show_run,
)
from ..status import NOT_REACHED, DeliveryStatus
from .pages import Pages

PATH = "/runs"
SAMPLES = 5
PAGE = 50
REFRESH_SECONDS = 5  # an approved run's page reloads itself while it sends (meta refresh, no script)


def awaiting_me(run: dict[str, Any], account: Account) -> bool:
    """The run waits for a level this account approves, and the account neither created it nor
    approved an earlier level (separation of duties, as approve_run enforces it)."""
    if run["status"] != "awaiting_approval":
        return False
    people = [run["created_by"], *run["approved_by"]]
    level = len(run["approved_by"]) + 1
    return account.can(Permission.RUNS_APPROVE, level) and not any(
        same_actor(p, account.actor) for p in people
    )


def routes(pages: Pages) -> list[Route]:
    app = pages.app

    def rules() -> list[str]:
        found, _ = load_rules(rule_files(app.config.rules_dir), app.dictionary, app.config.templates_dir)
        return sorted(found)

    async def index(
        request: Request, account: Account, status: int = 200, error: str | None = None
    ) -> Response:
        runs = list(reversed(await run_in_threadpool(list_runs, app)))
        mine = [r for r in runs if awaiting_me(r, account)]
        queue = request.query_params.get("queue") == "mine"
        names = await run_in_threadpool(rules) if account.can(Permission.RUNS_CREATE) else []
        return pages.render(
            request,
            "runs.html",
            account,
            status,
            runs=mine if queue else runs,
            waiting=len(mine),
            queue=queue,
            rules=names,
            error=error,
            today=local_today(app.config.timezone).isoformat(),
            local=pages.local,
        )

    async def listing(request: Request, account: Account) -> Response:
        return await index(request, account)

    async def create(request: Request, account: Account) -> Response:
        form = await request.form()
        try:
            on = date.fromisoformat(str(form.get("on") or ""))
            rule = await run_in_threadpool(
                find_rule,
                str(form.get("rule") or ""),
                app.config.rules_dir,
                app.dictionary,
                app.config.templates_dir,
            )
            created = await run_in_threadpool(create_run, app, rule, on, account.actor)
        except ValueError:
            return await index(request, account, 400, "date")
        except NotifierError as exc:
            return await index(request, account, 400, error_text(exc, app.config.ui.language))
        return RedirectResponse(f"{PATH}/{created.run}", status_code=303)

    async def detail(
        request: Request,
        account: Account,
        status: int = 200,
        error: str | None = None,
        unmasked: dict[str, Any] | None = None,
    ) -> Response:
        run_id = int(request.path_params["run"])
        try:
            run = await run_in_threadpool(show_run, app, run_id)
        except NotFound:
            return pages.render(request, "error.html", account, 404, message_id="not_found")
        page = (
            unmasked
            if unmasked is not None
            else await run_in_threadpool(lambda: run_messages_page(app, run_id, sample=SAMPLES))
        )
        diff = await run_in_threadpool(rule_diff, app, run_id)
        level = len(run["approvals"]) + 1
        failed = sum(run["counts"][s.value] for s in NOT_REACHED)
        return pages.render(
            request,
            "run.html",
            account,
            status,
            run=run,
            messages=page["messages"],
            diff=diff,
            error=error,
            may_approve=run["status"] == "awaiting_approval" and account.can(Permission.RUNS_APPROVE, level),
            may_cancel=run["status"] in ("awaiting_approval", "approved")
            and account.can(Permission.RUNS_CANCEL),
            may_retry=failed > 0
            and run["status"] in ("approved", "completed")
            and account.can(Permission.RUNS_RETRY),
            failed=failed,
            level=level,
            unmasked=unmasked is not None,
            refresh=REFRESH_SECONDS if run["status"] == "approved" else None,
            local=pages.local,
            done=request.query_params.get("done"),
        )

    async def show(request: Request, account: Account) -> Response:
        return await detail(request, account)

    async def recipients(request: Request, account: Account) -> Response:
        run_id = int(request.path_params["run"])
        wanted = request.query_params.get("status") or None
        if wanted is not None and wanted not in {s.value for s in DeliveryStatus}:
            wanted = None
        try:
            offset = max(0, int(request.query_params.get("offset") or 0))
        except ValueError:
            offset = 0
        try:
            out = await run_in_threadpool(
                lambda: run_deliveries(app, run_id, status=wanted, offset=offset, limit=PAGE)
            )
        except NotFound:
            return pages.render(request, "error.html", account, 404, message_id="not_found")
        return pages.render(
            request,
            "deliveries.html",
            account,
            page=out,
            statuses=[s.value for s in DeliveryStatus],
            wanted=wanted,
            previous=offset - PAGE if offset > 0 else None,
            next=offset + PAGE if offset + PAGE < out["total"] else None,
            local=pages.local,
        )

    async def unmask(request: Request, account: Account) -> Response:
        """One resident's stored messages in full, for an account holding `unmask`, with the
        reason it gives recorded in the audit log (as `runs messages --unmask --reason`)."""
        run_id = int(request.path_params["run"])
        form = await request.form()
        resident = str(form.get("resident") or "").strip()
        reason = str(form.get("reason") or "").strip()
        if not resident or not reason:
            return await detail(
                request,
                account,
                400,
                error_text(_NeedsReason.translatable(NEEDS_REASON), app.config.ui.language),
            )
        try:
            page = await run_in_threadpool(
                lambda: run_messages_page(
                    app, run_id, resident=resident, unmask=True, by=account.actor, reason=reason
                )
            )
        except NotifierError as exc:
            return await detail(request, account, 409, error_text(exc, app.config.ui.language))
        return await detail(request, account, unmasked=page)

    def acting(action: Callable[..., Any], done: str) -> Callable[[Request, Account], Any]:
        async def handler(request: Request, account: Account) -> Response:
            run_id = int(request.path_params["run"])
            form = await request.form()
            comment = str(form.get("comment") or "").strip() or None
            try:
                await run_in_threadpool(action, account, run_id, comment, str(form.get("decision") or ""))
            except PermissionDenied as exc:
                await run_in_threadpool(refused, app, exc, f"page:{request.url.path}")
                return await detail(request, account, 403, error_text(exc, app.config.ui.language))
            except NotifierError as exc:
                return await detail(request, account, 409, error_text(exc, app.config.ui.language))
            return RedirectResponse(f"{PATH}/{run_id}?done={done}", status_code=303)

        return handler

    def review(account: Account, run_id: int, comment: str | None, decision: str) -> None:
        if decision == "reject":  # a rejection ends the run; the reviewer says why
            if not comment:
                raise _NeedsComment.translatable("a rejection needs a comment")
            cancel_run(app, run_id, account.actor, comment=f"rejected: {comment}")
            return

        gate = approval_gate(account, Permission.RUNS_APPROVE, "approve runs")
        approve_run(app, run_id, account.actor, may_approve=gate, comment=comment)

    def cancel(account: Account, run_id: int, comment: str | None, _: str) -> None:
        cancel_run(app, run_id, account.actor, comment=comment)

    def retry(account: Account, run_id: int, _comment: str | None, _: str) -> None:
        retry_failed(app, run_id, account.actor)

    run_path = PATH + "/{run:int}"
    return [
        Route(PATH, pages.page(Permission.RUNS_READ, listing), methods=["GET"]),
        Route(PATH, pages.page(Permission.RUNS_CREATE, create), methods=["POST"]),
        Route(run_path, pages.page(Permission.RUNS_READ, show), methods=["GET"]),
        Route(run_path + "/deliveries", pages.page(Permission.RUNS_READ, recipients), methods=["GET"]),
        Route(
            run_path + "/review",
            pages.page(Permission.RUNS_APPROVE, acting(review, "reviewed")),
            methods=["POST"],
        ),
        Route(
            run_path + "/cancel",
            pages.page(Permission.RUNS_CANCEL, acting(cancel, "cancelled")),
            methods=["POST"],
        ),
        Route(run_path + "/unmask", pages.page(Permission.UNMASK, unmask), methods=["POST"]),
        Route(
            run_path + "/retry",
            pages.page(Permission.RUNS_RETRY, acting(retry, "retried")),
            methods=["POST"],
        ),
    ]


class _NeedsComment(NotifierError):
    pass


class _NeedsReason(NotifierError):
    pass


NEEDS_REASON = "give the resident ID and why the messages are shown in full (recorded in the audit log)"
