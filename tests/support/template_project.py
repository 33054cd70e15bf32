"""A project sending the farm-subsidy notice through a provider of registered templates (Aliyun,
Tencent) with the rule's sms_templates block, residents and the config pointing at a local
server: the common part of aliyun_project.py and tencent_project.py."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .campaign import open_window, write_roster
from .project import write_config

SIGN = "县农业农村局"  # the rule's item.department: what 【...】 the SMS template shows
URL = "https://example.gov.cn/zwgk/2026/gdbt"  # the rule's item.url, fixed text in the template
SENDING = "retry_base_seconds = 0\nsettle_seconds = 0\nbatch_size = 500"


def sms_templates_block(kind: str, code: str, text: str, params: Mapping[str, str]) -> str:
    """`sms_templates:` with one kind's registered template, as a rule file writes it."""
    values = ", ".join(f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in params.items())
    return (
        f"sms_templates:\n  {kind}:\n"
        f"    code: {json.dumps(code)}\n    sign: {SIGN}\n    text: {json.dumps(text, ensure_ascii=False)}\n"
        f"    params: {{{values}}}\n"
    )


def template_project(
    kind: str,
    folder: Path,
    db_url: str,
    table: Mapping[str, Any],
    block: str,
    *,
    people: int = 10,
    providers: str | None = None,
    extra: str = "",
    sending: str = SENDING,
    phones: list[str] | None = None,
    names: list[str] | None = None,
) -> Path:
    """The project's config (`[providers.<kind>]` is `table`), the rule with `block` appended and
    a roster of `people` rural residents with 2 mu of land, reachable by SMS only (phones
    1380000NNNN, or `phones`; names 李N, or `names`)."""
    lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in table.items())
    cfg = write_config(
        folder,
        db_url,
        f"""
[sending]
{sending}
[channels.sms]
providers = {providers or json.dumps([kind])}
[providers.{kind}]
{lines}
{extra}
""",
    )
    open_window(folder)
    rule = folder / "rules" / "farm-subsidy-2026.yaml"
    rule.write_text(rule.read_text(encoding="utf-8") + block, encoding="utf-8")
    numbers = phones or [f"1380000{i:04d}" for i in range(1, people + 1)]
    who = names or [f"李{i}" for i in range(1, len(numbers) + 1)]
    write_roster(
        folder / "p.csv",
        [
            [f"A{i:06d}", who[i - 1], phone, "", f"北村{i}号", "城关镇", "北村", "农村", "2", ""]
            for i, phone in enumerate(numbers, 1)
        ],
    )
    return cfg
