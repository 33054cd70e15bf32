"""A project sending the farm-subsidy notice through the local Aliyun server with the rule's
registered template (sms_templates.aliyun), residents and an approved run: for dispatcher,
serve and crash tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .aliyun_server import AliyunServer
from .campaign import open_window, write_roster
from .project import write_config

CODE = "SMS_4870001"
SIGN = "县农业农村局"
# What templates/farm_subsidy.sms.j2 renders after its 【signature】, as registered at Aliyun.
TEXT = (
    "${name}您好：您家承包耕地${mu}亩，2026年耕地地力保护补贴标准每亩${rate}，预计${amount}，"
    "将打入惠农资金账户。核实请登录https://example.gov.cn/zwgk/2026/gdbt。回TD退订"
)
PARAMS = {
    "name": '{{ resident.name | default("居民") }}',
    "mu": "{{ resident.farmland_mu }}",
    "rate": "{{ params.subsidy_per_mu | money }}",
    "amount": "{{ (resident.farmland_mu * params.subsidy_per_mu) | money }}",
}


def sms_templates_block(code: str = CODE) -> str:
    params = ", ".join(f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in PARAMS.items())
    return (
        "sms_templates:\n  aliyun:\n"
        f"    code: {code}\n    sign: {SIGN}\n    text: {json.dumps(TEXT, ensure_ascii=False)}\n"
        f"    params: {{{params}}}\n"
    )


def aliyun_project(
    folder: Path,
    db_url: str,
    server: AliyunServer,
    *,
    people: int = 10,
    providers: str = '["aliyun"]',
    aliyun: dict[str, Any] | None = None,
    extra: str = "",
    sending: str = "retry_base_seconds = 0\nsettle_seconds = 0\nbatch_size = 500",
    phones: list[str] | None = None,
) -> Path:
    """The project's config (SMS through `server`; `aliyun` overrides keys of its table), the
    rule with its registered template and a roster of `people` rural residents reachable by
    SMS only (phones 1380000NNNN, or `phones`)."""
    table = "\n".join(
        f"{k} = {json.dumps(v)}" for k, v in (server.table(rate_per_second=0) | (aliyun or {})).items()
    )
    cfg = write_config(
        folder,
        db_url,
        f"""
[sending]
{sending}
[channels.sms]
providers = {providers}
[providers.aliyun]
{table}
{extra}
""",
    )
    open_window(folder)
    rule = folder / "rules" / "farm-subsidy-2026.yaml"
    rule.write_text(rule.read_text(encoding="utf-8") + sms_templates_block(), encoding="utf-8")
    server.register(CODE, TEXT)
    numbers = phones or [f"1380000{i:04d}" for i in range(1, people + 1)]
    write_roster(
        folder / "p.csv",
        [
            [f"A{i:06d}", f"李{i}", phone, "", f"北村{i}号", "城关镇", "北村", "农村", "2", ""]
            for i, phone in enumerate(numbers, 1)
        ],
    )
    return cfg
