"""The HTTP side of `notifier serve`: Twilio webhooks, health and metrics (Starlette).

Webhooks change stored data, so nothing is believed before Twilio's signature is: the
X-Twilio-Signature header is an HMAC (auth token) over the full URL Twilio called and the form
fields. Behind a proxy that URL is not what this process sees, so the public base URL comes from
configuration (`[serve] public_url`, else the `status_callback_url` we hand Twilio). Forged or
unsigned requests get 403 and touch nothing; signed but malformed ones get 400 saying what is
wrong. Database work is synchronous SQLAlchemy, run in the thread pool so the event loop (shared
with the dispatcher) keeps serving.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from .app import App
from .clock import as_utc
from .config import Config
from .errors import ConfigError, InputError, NotFound
from .health import Health
from .masking import mask_phone
from .optouts import handle_inbound_sms
from .receipts import Receipt, apply_receipt
from .status import Channel, DeliveryStatus, RunStatus
from .storage.schema import deliveries, firings, runs

log = logging.getLogger("notifier.web")

STATUS_PATH = "/twilio/status"
INBOUND_PATH = "/twilio/inbound"
MAX_BODY = 64 * 1024  # Twilio's callbacks are a few hundred bytes
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


@dataclass
class WebhookAuth:
    """Who may call the webhooks: Twilio, proven by a signature with one of our auth tokens."""

    tokens: list[str]
    public_url: str = ""  # base (scheme, host, optional path prefix) Twilio uses to reach us
    why_disabled: str = ""

    def url_for(self, request: Request) -> str:
        """The URL Twilio signed: the public base + this path + the query, or the URL as received."""
        if not self.public_url:
            return str(request.url)
        query = request.url.query
        return self.public_url.rstrip("/") + request.url.path + (f"?{query}" if query else "")

    def valid(self, url: str, params: Mapping[str, str], signature: str) -> bool:
        return any(RequestValidator(t).validate(url, dict(params), signature) for t in self.tokens)


def webhook_auth(config: Config) -> WebhookAuth:
    """Auth tokens of every Twilio provider whose token can be read, and the public base URL."""
    tokens, callbacks, problems = [], [], []
    for name, section in config.raw["providers"].items():
        if str(section.get("kind", name)) != "twilio":
            continue
        try:
            settings = config.provider_settings(name)
        except ConfigError as exc:
            problems.append(exc.message)
            continue
        if settings.get("auth_token"):
            tokens.append(str(settings["auth_token"]))
        if settings.get("status_callback_url"):
            callbacks.append(str(settings["status_callback_url"]))
    public = config.serve.public_url
    if not public and callbacks:
        public = public_base(callbacks[0])
    why = (
        ""
        if tokens
        else (
            "Twilio webhooks are disabled: no [providers.twilio] auth_token"
            + (f" ({problems[0]})" if problems else "")
        )
    )
    return WebhookAuth(tokens, public, why)


def public_base(callback_url: str) -> str:
    """https://host/prefix/twilio/status?x=1 -> https://host/prefix: where this app is mounted."""
    parts = urlsplit(callback_url)
    path = parts.path[: -len(STATUS_PATH)] if parts.path.endswith(STATUS_PATH) else ""
    return f"{parts.scheme}://{parts.netloc}{path}"


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _signed_form(request: Request, auth: WebhookAuth) -> dict[str, str] | Response:
    """The form fields of a request proven to come from Twilio, or the response refusing it."""
    if auth.why_disabled:
        return _error(503, auth.why_disabled)
    signature = request.headers.get("x-twilio-signature")
    if not signature:
        return _error(403, "missing X-Twilio-Signature: only Twilio may call this endpoint")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        return _error(400, f"expected an application/x-www-form-urlencoded body, got {ctype or 'none'}")
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
        return _error(413, f"body larger than {MAX_BODY} bytes")
    try:
        form = await request.form()
    except Exception as exc:  # starlette raises several types for a broken body
        return _error(400, f"cannot read the form body: {exc}")
    params = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    url = auth.url_for(request)
    if not auth.valid(url, params, signature):
        log.warning("refused %s: bad X-Twilio-Signature for %s", request.url.path, url)
        return _error(403, "invalid X-Twilio-Signature")
    return params


def build_web_app(app: App, auth: WebhookAuth | None = None, health: Health | None = None) -> Starlette:
    """The Starlette application; `auth` defaults to what the config says; `health` is what the
    loops of `serve` report (a locked database makes /healthz `degraded` until it clears)."""
    health = health or Health()
    auth = auth or webhook_auth(app.config)

    async def twilio_status(request: Request) -> Response:
        form = await _signed_form(request, auth)
        if isinstance(form, Response):
            return form
        try:
            receipt = Receipt.from_twilio(form, dict(request.query_params))
            result = await run_in_threadpool(apply_receipt, app, receipt)
        except InputError as exc:
            return _error(400, exc.message)
        except NotFound as exc:
            return _error(404, exc.message)
        log.info(
            "receipt %s for delivery %s: %s (%s -> %s)",
            receipt.provider_status,
            result.delivery_id,
            result.outcome,
            result.old,
            result.new,
        )
        return JSONResponse(result.as_json())

    async def twilio_inbound(request: Request) -> Response:
        form = await _signed_form(request, auth)
        if isinstance(form, Response):
            return form
        sender = form.get("From", "").strip()
        if not sender:
            return _error(400, "inbound SMS without From")
        try:
            result = await run_in_threadpool(
                handle_inbound_sms, app, sender, form.get("Body", ""), message_sid=form.get("MessageSid", "")
            )
        except InputError as exc:
            return _error(400, exc.message)
        if result.opted_out:
            log.info(
                "opt-out from %s (%s)", mask_phone(result.phone), "new" if result.added else "already listed"
            )
        return Response(EMPTY_TWIML, media_type="application/xml")

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

    return Starlette(
        routes=[
            Route(STATUS_PATH, twilio_status, methods=["POST"]),
            Route(INBOUND_PATH, twilio_inbound, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ]
    )


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
    return "\n".join(m.render() for m in (dm, qm, rm, em, fm)) + "\n"
