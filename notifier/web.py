"""The HTTP side of `notifier serve`: every configured provider's webhooks, health and metrics,
the public verification page (`/v`, verify_page.py), the residents' self-query page (`/query`,
selfquery_page.py), the public 公示 lists (`/lists`, disclosure/page.py) and the console.

The webhook flow is the same for every provider and fixed here: read the request (size-capped),
let the provider package verify it (nothing is believed before its signature is: forged or
unsigned requests get 403 and touch nothing), parse it into provider-neutral events, apply them
(receipts.apply_event, optouts.handle_inbound_sms) and answer what the provider expects. Signed
but malformed requests get 400 saying what is wrong. Routes are registered per provider kind
(`/twilio/status`, `/twilio/inbound`) from channels.registry. Providers sign the full URL they
called; behind a proxy that is not what this process sees, so the public base URL comes from
`[serve] public_url`, else from the provider's settings (Twilio: its `status_callback_url`).
Database work is synchronous SQLAlchemy, run in the thread pool so the event loop (shared with
the dispatcher) keeps serving.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date

import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route

from .app import App
from .channels.pauses import provider_pauses
from .channels.registry import webhooks_for
from .channels.webhooks import Hook, Refusal, Reply, Verified, WebhookRequest, Webhooks
from .clock import as_utc
from .console import console_app
from .console.app import environment
from .disclosure.page import ListsPage
from .errors import InputError, NotFound
from .health import Health
from .masking import mask_phone
from .optouts import handle_inbound_sms
from .receipts import apply_event
from .selfquery_page import SelfQueryPage
from .status import Channel, DeliveryStatus, RunStatus
from .storage.schema import deliveries, firings, runs
from .verify_page import VerifyPage

log = logging.getLogger("notifier.web")

MAX_BODY = 64 * 1024  # providers' callbacks are a few hundred bytes

Endpoint = Callable[[Request], Awaitable[Response]]


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _reply(reply: Reply) -> Response:
    return Response(reply.body, status_code=reply.status, media_type=reply.media_type)


async def _received(request: Request, public_base: str) -> WebhookRequest | Response:
    """The request as the provider sent it, or the response refusing a body that is too large."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
        return _error(413, f"body larger than {MAX_BODY} bytes")
    body = await request.body()
    if len(body) > MAX_BODY:
        return _error(413, f"body larger than {MAX_BODY} bytes")
    query = request.url.query
    url = public_base.rstrip("/") + request.url.path + (f"?{query}" if query else "") if public_base else ""
    return WebhookRequest(
        url=url or str(request.url),
        path=request.url.path,
        query=dict(request.query_params),
        headers=dict(request.headers.items()),
        body=body,
        client=request.client.host if request.client else "",
    )


async def _status(app: App, hooks: Webhooks, verified: Verified, request: WebhookRequest) -> Response:
    """Apply a verified status callback's events, in order, and answer their outcomes (one event:
    its outcome). An event for no delivery answers 404 at once: the provider sends the callback
    again, and the events already applied come back as duplicates."""
    results = []
    for event in hooks.parse_status(verified, request):
        try:
            result = await run_in_threadpool(apply_event, app, event)
        except NotFound as exc:
            return _error(404, exc.message)
        log.info(
            "receipt %s for delivery %s: %s (%s -> %s)",
            event.provider_status,
            result.delivery_id,
            result.outcome,
            result.old,
            result.new,
        )
        results.append(result.as_json())
    if hooks.status_reply is not None:
        return _reply(hooks.status_reply)
    return JSONResponse(results[0] if len(results) == 1 else {"results": results})


async def _inbound(app: App, hooks: Webhooks, verified: Verified) -> Response:
    for message in hooks.parse_inbounds(verified):
        result = await run_in_threadpool(handle_inbound_sms, app, message)
        if result.opted_out:
            log.info(
                "opt-out from %s (%s)", mask_phone(result.phone), "new" if result.added else "already listed"
            )
    return _reply(hooks.inbound_reply or Reply())


def _endpoint(app: App, hooks: Webhooks, hook: Hook) -> Endpoint:
    """One webhook route: verify -> parse -> apply -> answer, the same for every provider."""
    public_base = app.config.serve.public_url or hooks.public_base()

    async def endpoint(request: Request) -> Response:
        if hooks.why_disabled:
            return _error(503, hooks.why_disabled)
        received = await _received(request, public_base)
        if isinstance(received, Response):
            return received
        verified = hooks.verify(received)
        if isinstance(verified, Refusal):
            return _error(verified.status, verified.message)
        try:
            if hook is Hook.STATUS:
                return await _status(app, hooks, verified, received)
            return await _inbound(app, hooks, verified)
        except InputError as exc:
            return _error(400, exc.message)

    return endpoint


def build_web_app(
    app: App,
    webhooks: Sequence[Webhooks] | None = None,
    health: Health | None = None,
    today: Callable[[], date] | None = None,
) -> Starlette:
    """The Starlette application; `webhooks` default to those of the configured providers;
    `health` is what the loops of `serve` report (a locked database makes /healthz `degraded`
    until it clears); `today` is the county's date by default (public lists expire by it)."""
    health = health or Health()
    hooks = webhooks_for(app.config) if webhooks is None else webhooks

    async def healthz(request: Request) -> Response:
        try:
            await run_in_threadpool(_ping, app)
        except Exception as exc:  # any database failure is "unhealthy", with its kind
            return JSONResponse(
                {"ok": False, "status": "error", "database": f"error: {exc.__class__.__name__}"},
                status_code=503,
            )
        state = health.as_json()
        ok = state["status"] == "ok"
        return JSONResponse({"ok": ok, "database": "ok"} | state, status_code=200 if ok else 503)

    async def metrics(request: Request) -> Response:
        text = await run_in_threadpool(prometheus_text, app)
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    routes = [
        _only("POST", path, _endpoint(app, h, hook)) for h in hooks for path, hook in h.routes().items()
    ]
    env = environment(app.config.ui.language)
    verify = [_only("GET", path, endpoint) for path, endpoint in VerifyPage(app, env).endpoints().items()]
    selfquery = SelfQueryPage(app, env).endpoints().items()
    query = [_only(("GET", "POST"), path, endpoint) for path, endpoint in selfquery]
    shelf = ListsPage(app, env, today).endpoints().items()
    lists = [_only("GET", path, endpoint) for path, endpoint in shelf]
    return Starlette(
        routes=[
            *routes,
            _only("GET", "/healthz", healthz),
            _only("GET", "/metrics", metrics),
            *verify,  # public: residents check a notice's code
            *query,  # public: residents look up their notices (身份证号 + 姓名, in a POST body)
            *lists,  # public: the 公示 lists in (and past) their period
            Mount("/", app=console_app(app)),  # everything else: the console (its own sessions and headers)
        ]
    )


ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _only(
    method: str | tuple[str, ...], path: str, endpoint: Callable[[Request], Awaitable[Response]]
) -> Route:
    """A route that owns its path for every method: another method is answered 405 here rather
    than falling through to the console mounted at /."""
    allowed = (method,) if isinstance(method, str) else method

    async def guarded(request: Request) -> Response:
        if request.method not in allowed and not ("GET" in allowed and request.method == "HEAD"):
            return PlainTextResponse(
                "Method Not Allowed", status_code=405, headers={"Allow": ", ".join(allowed)}
            )
        return await endpoint(request)

    return Route(path, guarded, methods=ALL_METHODS)


def _ping(app: App) -> None:
    with app.reader.connect() as conn:
        conn.execute(sa.text("SELECT 1"))


@dataclass
class _Metric:
    name: str
    help: str
    samples: list[tuple[dict[str, str], int]] = field(default_factory=list)

    def render(self) -> str:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} gauge"]
        for labels, value in self.samples:
            text = ",".join(f'{k}="{v}"' for k, v in labels.items())
            lines.append(f"{self.name}{{{text}}} {value}" if text else f"{self.name} {value}")
        return "\n".join(lines)


def prometheus_text(app: App) -> str:
    """Gauges read from the database (so every worker reports the same truth): deliveries by
    status and channel (every combination, zeros included, so series never vanish), the queue
    (pending deliveries of approved runs) and runs by status."""
    d = deliveries
    with app.reader.connect() as conn:
        by = {
            (s, c): n
            for s, c, n in conn.execute(
                sa.select(d.c.status, d.c.channel, sa.func.count()).group_by(d.c.status, d.c.channel)
            )
        }
        queue = conn.execute(
            sa.select(sa.func.count())
            .select_from(d.join(runs, runs.c.id == d.c.run_id))
            .where(d.c.status == DeliveryStatus.PENDING, runs.c.status == RunStatus.APPROVED)
        ).scalar_one()
        by_run = dict(
            conn.execute(sa.select(runs.c.status, sa.func.count()).group_by(runs.c.status)).tuples().all()
        )
        errors = conn.execute(
            sa.select(d.c.provider, d.c.error_code, sa.func.count())
            .where(d.c.error_code.is_not(None))
            .group_by(d.c.provider, d.c.error_code)
        ).all()
        paused_until = {p.provider: p.until for p in provider_pauses(conn)}
        last = conn.execute(
            sa.select(firings.c.rule_id, sa.func.max(firings.c.scheduled_at))
            .where(firings.c.status == "created")
            .group_by(firings.c.rule_id)
        ).all()
    channels = [c.value for c in Channel] + sorted({c for _, c in by} - {c.value for c in Channel})
    dm = _Metric("notifier_deliveries", "Deliveries by status and channel.")
    for s in DeliveryStatus:
        for c in channels:
            dm.samples.append(({"status": s.value, "channel": c}, int(by.get((s.value, c), 0))))
    qm = _Metric(
        "notifier_queue_depth",
        "Pending deliveries of approved runs (waiting to be sent).",
        [({}, int(queue))],
    )
    rm = _Metric(
        "notifier_runs",
        "Runs by status.",
        [({"status": s.value}, int(by_run.get(s.value, 0))) for s in RunStatus],
    )
    em = _Metric(
        "notifier_provider_errors",
        "Deliveries whose last provider answer was an error, by provider and code.",
        [({"provider": p or "", "code": c}, int(n)) for p, c, n in errors],
    )
    fm = _Metric(
        "notifier_last_firing_timestamp_seconds",
        "Scheduled time of each rule's last firing that created a run.",
        [({"rule": r}, int(as_utc(t).timestamp())) for r, t in last],
    )
    pm = _Metric(
        "notifier_provider_paused_until_timestamp_seconds",
        "When each provider paused by an account-level refusal (balance, day limit, signature or "
        "template not approved) is tried again; in the past: not paused.",
        [({"provider": p}, int(as_utc(t).timestamp())) for p, t in sorted(paused_until.items())],
    )
    return "\n".join(m.render() for m in (dm, qm, rm, em, fm, pm)) + "\n"
