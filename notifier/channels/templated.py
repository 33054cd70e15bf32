"""Registered SMS templates: Chinese providers send only pre-approved template text under an
approved signature, so the personal part of a notice travels as template variables."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TemplateCall:
    """One message's registered template at one provider kind, with its variables' values."""

    code: str  # Aliyun TemplateCode (SMS_...) / Tencent TemplateId
    sign: str  # the approved signature (Aliyun SignName / Tencent SignName)
    params: tuple[tuple[str, str], ...]  # (variable, value) in the registered template's order
