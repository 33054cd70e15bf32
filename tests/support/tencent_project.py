"""A project sending the farm-subsidy notice through the local Tencent server with the rule's
registered template (sms_templates.tencent, variables {1}..{4}), and its residents: for
dispatcher, serve and crash tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .template_project import SENDING, SIGN, URL, sms_templates_block, template_project
from .tencent_server import TencentServer

__all__ = ["PARAMS", "SIGN", "TEMPLATE_ID", "TEXT", "tencent_project"]

TEMPLATE_ID = "2100871"
# What templates/farm_subsidy.sms.j2 renders after its 【signature】, as registered at Tencent.
TEXT = (
    "{1}您好：您家承包耕地{2}亩，2026年耕地地力保护补贴标准每亩{3}，预计{4}，"
    f"将打入惠农资金账户。核实请登录{URL}。回TD退订"
)
PARAMS = {
    "1": '{{ resident.name | default("居民") }}',
    "2": "{{ resident.farmland_mu }}",
    "3": "{{ params.subsidy_per_mu | money }}",
    "4": "{{ (resident.farmland_mu * params.subsidy_per_mu) | money }}",
}


def tencent_project(
    folder: Path,
    db_url: str,
    server: TencentServer,
    *,
    people: int = 10,
    providers: str = '["tencent"]',
    tencent: dict[str, Any] | None = None,
    extra: str = "",
    sending: str = SENDING,
    phones: list[str] | None = None,
    names: list[str] | None = None,
) -> Path:
    """The project's config (SMS through `server`, no per-number spacing unless `tencent` says;
    `tencent` overrides keys of its table), the rule with its registered template and a roster
    of `people` rural residents reachable by SMS only (phones 1380000NNNN, or `phones`; names
    李N, or `names`)."""
    server.register(TEMPLATE_ID, TEXT, SIGN)
    table = server.table(per_number_seconds=0) | (tencent or {})
    return template_project(
        "tencent",
        folder,
        db_url,
        table,
        sms_templates_block("tencent", TEMPLATE_ID, TEXT, PARAMS),
        people=people,
        providers=providers,
        extra=extra,
        sending=sending,
        phones=phones,
        names=names,
    )
