"""A project sending the farm-subsidy notice through the local Aliyun server with the rule's
registered template (sms_templates.aliyun), residents and an approved run: for dispatcher,
serve and crash tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .aliyun_server import AliyunServer
from .template_project import SENDING, SIGN, URL, template_project
from .template_project import sms_templates_block as block

__all__ = ["CODE", "PARAMS", "SIGN", "TEXT", "aliyun_project", "sms_templates_block"]

CODE = "SMS_4870001"
# What templates/farm_subsidy.sms.j2 renders after its 【signature】, as registered at Aliyun.
TEXT = (
    "${name}您好：您家承包耕地${mu}亩，2026年耕地地力保护补贴标准每亩${rate}，预计${amount}，"
    f"将打入惠农资金账户。核实请登录{URL}。回TD退订"
)
PARAMS = {
    "name": '{{ resident.name | default("居民") }}',
    "mu": "{{ resident.farmland_mu }}",
    "rate": "{{ params.subsidy_per_mu | money }}",
    "amount": "{{ (resident.farmland_mu * params.subsidy_per_mu) | money }}",
}


def sms_templates_block(code: str = CODE) -> str:
    return block("aliyun", code, TEXT, PARAMS)


def aliyun_project(
    folder: Path,
    db_url: str,
    server: AliyunServer,
    *,
    people: int = 10,
    providers: str = '["aliyun"]',
    aliyun: dict[str, Any] | None = None,
    extra: str = "",
    sending: str = SENDING,
    phones: list[str] | None = None,
) -> Path:
    """The project's config (SMS through `server`; `aliyun` overrides keys of its table), the
    rule with its registered template and a roster of `people` rural residents reachable by
    SMS only (phones 1380000NNNN, or `phones`)."""
    server.register(CODE, TEXT)
    table = server.table(rate_per_second=0) | (aliyun or {})
    return template_project(
        "aliyun",
        folder,
        db_url,
        table,
        sms_templates_block(),
        people=people,
        providers=providers,
        extra=extra,
        sending=sending,
        phones=phones,
    )
