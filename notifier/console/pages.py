"""Console pages and the one gate every page goes through (login, permission, CSRF)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from ..app import App
from ..audit import log as audit
from ..channels.pauses import Pause, paused_now
from ..clock import utcnow
from ..errors import PermissionDenied
from ..identity import Account, Permission, authenticate_password
from ..identity.accounts import AccountLocked, account_by_id, refused
from ..identity.permissions import authorize
from ..output import local_time
from .security import csrf_ok
from .throttle import LoginThrottle

Handler = Callable[[Request, Account], Awaitable[Response]]
FormReader = Callable[[Request], Awaitable[Mapping[str, Any]]]
MENU: list[tuple[str, str, Permission | None]] = [
    ("/rules", "Rules", Permission.RULES_READ),
    ("/import", "Import roster", Permission.IMPORT),
    ("/runs", "Runs", Permission.RUNS_READ),
    ("/disclosure", "Public lists", Permission.RUNS_READ),
    ("/optouts", "Opt-outs", Permission.OPTOUTS),
    ("/audit", "Audit", Permission.AUDIT_READ),
]
"""(path, message id, permission) of the pages in the navigation, in order."""


class Pages:
    def __init__(self, app: App, env: jinja2.Environment) -> None:
        self.app, self.env = app, env
        settings = app.config.console
        self.max_age = settings.session_hours * 3600
        env.globals["local"] = self.local
        self.throttle = LoginThrottle(settings.login_failures_per_address, settings.login_window_minutes * 60)

    def routes(self) -> list[Route]:
        return [
            Route("/", self.page(None, self.home)),
            Route("/login", self.login, methods=["GET", "POST"]),
            Route("/logout", self.logout, methods=["POST"]),
        ]

    # -- rendering -------------------------------------------------------------------------------
    def render(
        self, request: Request, template: str, account: Account | None, status: int = 200, **ctx: Any
    ) -> Response:
        menu = [(p, t) for p, t, perm in MENU if account is not None and (perm is None or account.can(perm))]
        pauses = self._pauses() if account is not None and account.can(Permission.RUNS_READ) else []
        html = self.env.get_template(template).render(
            request=request, account=account, menu=menu, pauses=pauses, **ctx
        )
        return HTMLResponse(html, status_code=status)

    def _pauses(self) -> list[Pause]:
        """Providers paused now by an account-level refusal: every page says so to staff."""
        with self.app.reader.connect() as conn:
            return paused_now(conn, utcnow())

    def local(self, when: Any) -> str:
        """A stored time (or its ISO text from a service's JSON) as staff read it, in the
        configured timezone (output.local_time, as the CLI shows it)."""
        return local_time(when, self.app.config.timezone)

    # -- the gate --------------------------------------------------------------------------------
    async def account(self, request: Request) -> Account | None:
        """The logged-in account, re-read from the database (a disabled account is logged out)."""
        session = request.session
        account_id, at = session.get("account"), session.get("at")
        if (
            not isinstance(account_id, int)
            or not isinstance(at, (int, float))
            or time.time() - at > self.max_age
        ):
            return None
        account = await run_in_threadpool(account_by_id, self.app, account_id)
        if account is None or account.disabled:
            session.clear()
            return None
        return account

    def page(
        self, permission: Permission | None, handler: Handler, *, read_form: FormReader | None = None
    ) -> Callable[[Request], Awaitable[Response]]:
        """Login required; `permission` checked (refusals audited) before a body is read; POSTs
        need the CSRF token. The form, read once (by `read_form` for uploads, which stream their
        file instead of spooling it), is `request.state.form` for the handler."""

        async def endpoint(request: Request) -> Response:
            account = await self.account(request)
            if account is None:
                return RedirectResponse("/login", status_code=303)
            if permission is not None:
                try:
                    authorize(account, permission, what=request.url.path)
                except PermissionDenied as exc:
                    await run_in_threadpool(refused, self.app, exc, f"page:{request.url.path}")
                    return self.render(request, "error.html", account, 403, message_id="forbidden")
            if request.method == "POST":
                form = await (read_form or _starlette_form)(request)
                request.state.form = form
                if not csrf_ok(request, form.get("csrf")):
                    return self.render(request, "error.html", account, 403, message_id="csrf")
            return await handler(request, account)

        endpoint.permission = permission  # type: ignore[attr-defined]  # read by the route x role tests
        endpoint.gated = True  # type: ignore[attr-defined]
        return endpoint

    # -- pages -----------------------------------------------------------------------------------
    async def home(self, request: Request, account: Account) -> Response:
        return self.render(request, "home.html", account)

    async def login(self, request: Request) -> Response:
        if request.method == "GET":
            return self.render(request, "login.html", None, error=None, name="")
        form = await request.form()
        name = str(form.get("name") or "")
        if not csrf_ok(request, form.get("csrf")):
            return self.render(request, "login.html", None, 403, error="csrf", name=name)
        address = request.client.host if request.client else ""
        if wait := self.throttle.wait(address):
            minutes = max(1, round(wait / 60))
            return self.render(
                request, "login.html", None, 429, error="throttled", minutes=minutes, name=name
            )
        try:
            account = await run_in_threadpool(
                authenticate_password, self.app, name, str(form.get("password") or "")
            )
        except AccountLocked as exc:
            self.throttle.failed(address)
            until = exc.until.astimezone(self.app.config.timezone).strftime("%H:%M")
            return self.render(request, "login.html", None, 429, error="locked", until=until, name=name)
        except PermissionDenied:
            self.throttle.failed(address)
            return self.render(request, "login.html", None, 401, error="failed", name=name)
        self.throttle.succeeded(address)
        request.session.clear()  # nothing of the anonymous session survives a login (new CSRF token)
        request.session.update({"account": account.id, "at": time.time()})
        return RedirectResponse("/", status_code=303)

    async def logout(self, request: Request) -> Response:
        form = await request.form()
        account = await self.account(request)
        if account is not None and csrf_ok(request, form.get("csrf")):
            await run_in_threadpool(self._audit_logout, account)
            request.session.clear()
        return RedirectResponse("/login", status_code=303)

    def _audit_logout(self, account: Account) -> None:
        with self.app.engine.begin() as conn:
            audit.record(conn, account.actor, "account.logout", account.actor)


async def _starlette_form(request: Request) -> Mapping[str, Any]:
    return await request.form()
