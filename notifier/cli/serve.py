"""`serve`: the long-running process (dispatcher loop, scheduler, webhooks, /healthz, /metrics)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import TYPE_CHECKING

from .common import command, open_app

if TYPE_CHECKING:
    from .common import SubParsers


def register(sub: SubParsers) -> None:
    s = command(
        sub,
        "serve",
        cmd_serve,
        "run the dispatcher loop and the Twilio webhooks, /healthz and /metrics",
        json=False,
    )
    s.add_argument("--host", help="address to listen on (default: [serve] host)")
    s.add_argument("--port", type=int, help="port to listen on (default: [serve] port; 0 = any free port)")


def cmd_serve(args: argparse.Namespace) -> int:
    """Logs go to stderr; the exit status is the service's."""
    from ..serve import ServeSettings, serve

    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)  # "Context impl ..." on every start is noise
    app = open_app(args)
    try:
        return asyncio.run(serve(app, ServeSettings.from_config(app, args.host, args.port)))
    finally:
        app.close()
