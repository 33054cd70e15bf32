"""The console's Starlette application: sessions, security headers, templates, routes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..app import App
from ..config import resolve_secret
from ..errors import ConfigError
from ..i18n import label, translations
from . import audit, imports, lists, optouts, rules, runs
from .pages import Pages
from .security import SecurityHeaders, csrf_token

HERE = Path(__file__).resolve().parent
MIN_SECRET = 32


def environment(language: str) -> jinja2.Environment:
    """Autoescaped templates with gettext from the catalogs of `language`."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        undefined=jinja2.StrictUndefined,
    )
    env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
    env.globals["label"] = lambda value: label(str(value), language)
    env.globals["csrf_token"] = csrf_token
    env.globals["language"] = language.replace("_", "-")
    return env


def session_secret(app: App) -> str:
    secret = str(resolve_secret(app.config.console.session_secret, "console.session_secret"))
    if len(secret) < MIN_SECRET:
        raise ConfigError(
            f"console.session_secret must be at least {MIN_SECRET} characters (a random string)"
        )
    return secret


def console_app(app: App) -> Starlette:
    """The console, or (without a session secret) one page saying how to enable it."""
    env = environment(app.config.ui.language)
    try:
        secret = session_secret(app)
    except ConfigError as exc:
        why = exc.message

        async def disabled(request: Request) -> Response:
            page = env.get_template("disabled.html").render(
                reason=why, request=request, account=None, pauses=[]
            )
            return HTMLResponse(page, status_code=503)

        return Starlette(routes=[Route("/{path:path}", disabled)], middleware=[Middleware(SecurityHeaders)])
    pages = Pages(app, env)
    https = app.config.serve.public_url.startswith("https://")
    middleware: list[Any] = [
        Middleware(SecurityHeaders),
        Middleware(
            SessionMiddleware,
            secret_key=secret,
            session_cookie="notifier_session",
            max_age=int(app.config.console.session_hours * 3600),
            same_site="lax",
            https_only=https,
        ),
    ]
    routes = [
        *pages.routes(),
        *imports.routes(pages),
        *optouts.routes(pages),
        *runs.routes(pages),
        *lists.routes(pages),
        *rules.routes(pages),
        *audit.routes(pages),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(routes=routes, middleware=middleware)
