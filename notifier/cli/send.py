"""`send`: dispatch the due deliveries of approved runs, or settle a run's `unknown` ones."""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..identity.permissions import Permission
from ..output import console, err_console, progress_bar
from .common import act, acting_flags, command, open_app
from .render import Payload, show

if TYPE_CHECKING:
    from ..app import App
    from ..delivery.dispatch import DispatchReport
    from .common import SubParsers


def register(sub: SubParsers) -> None:
    s = command(sub, "send", cmd_send, "dispatch due deliveries of approved runs")
    s.add_argument("--run", type=int)
    s.add_argument(
        "--until-idle",
        action="store_true",
        help="also wait for retries, and for interrupted or timed-out sends to be settled with the "
        "provider, until nothing is pending (exit 3 if some outcomes stay unknown)",
    )
    s.add_argument(
        "--resolve-unknown",
        type=int,
        metavar="RUN",
        help="instead of sending: settle the run's `unknown` deliveries as --as decides (audited)",
    )
    s.add_argument(
        "--as",
        dest="resolve_as",
        choices=["sent", "resend"],
        help="with --resolve-unknown: `sent` (it did go out) or `resend` (send the same row again)",
    )
    acting_flags(s, "with --resolve-unknown: assert the acting account's name")


@dataclass(frozen=True)
class Sent:
    """What one `send` did, and why deliveries still wait (not approved, quiet hours, ...)."""

    report: DispatchReport
    idle_reasons: list[dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        return self.report.as_json() | {"idle_reasons": self.idle_reasons}


def cmd_send(args: argparse.Namespace) -> int:
    """Exit 3 when some deliveries stay `unknown` (never resent blindly)."""
    from ..channels.registry import providers_for
    from ..delivery.dispatch import Dispatcher
    from ..status import DeliveryStatus

    if args.resolve_unknown is not None or args.resolve_as:
        return _resolve_unknown(args)
    app = open_app(args)
    dispatcher = Dispatcher(app, providers_for(app.config))
    total = dispatcher.count([DeliveryStatus.PENDING, DeliveryStatus.SENDING], args.run)
    with progress_bar("sending", total, not args.json) as (advance, _):
        report = asyncio.run(dispatcher.run(args.run, until_idle=args.until_idle, progress=advance))
    worked = bool(report.sent or report.failed or report.skipped)
    show(Sent(report, _idle_reasons(app, args.run, worked)), _sent, args.json)
    if not report.unknown:
        return 0
    err_console.print(
        f"[yellow]{report.unknown} deliveries are `unknown`: the provider could not be asked whether "
        "it took them; they are not resent blindly (see `runs show`; the next `send` asks again; "
        "once checked, settle them with `send --resolve-unknown RUN --as sent|resend --by USER`)[/]"
    )
    return 3


def _idle_reasons(app: App, run_id: int | None, worked: bool) -> list[dict[str, Any]]:
    """Why deliveries still wait after `send`; "nothing pending" is news only when this send did
    nothing either."""
    from ..clock import utcnow
    from ..delivery.why import idle_reasons

    reasons = idle_reasons(app, utcnow(), run_id)
    return [r for r in reasons if r["reason"] != "no_pending"] if worked else reasons


def _sent(s: Sent) -> None:
    r = s.report
    console.print(
        f"sent {r.sent}, failed {r.failed}, skipped {r.skipped}, "
        f"retrying {r.retried}, reconciled {r.reconciled}, remaining {r.remaining}"
    )
    for why in s.idle_reasons:
        err_console.print(f"{'waiting' if r.sent else 'nothing sent'}: {why['message']}", markup=False)


def _resolve_unknown(args: argparse.Namespace) -> int:
    from ..delivery.resolve import Decision, resolve_unknown

    if args.resolve_unknown is None or not args.resolve_as:
        err_console.print("usage error: --resolve-unknown RUN goes with --as sent|resend")
        return 2
    app = open_app(args)
    who = act(app, args, Permission.SEND_RESOLVE, "settle unknown deliveries")
    out = resolve_unknown(app, args.resolve_unknown, Decision(args.resolve_as), who.name)
    show(Payload(out), _resolved, args.json)
    return 0


def _resolved(r: Payload) -> None:
    out = r.data
    console.print(
        f"run {out['run']}: {out['resolved']} unknown deliveries settled as {out['as']}; "
        f"run is {out['run_status']}"
        + ("; `notifier send` sends them again" if out["as"] == "resend" else "")
    )
