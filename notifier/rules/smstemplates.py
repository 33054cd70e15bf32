"""`sms_templates:` in a rule file: the SMS template registered with each Chinese provider.

Aliyun and Tencent send only pre-approved text under an approved signature, so a rule that sends
SMS through them names, per provider kind, the registered template (its code / id), the
signature, the registered text (`${name}` variables, as typed into the provider's console) and
each variable's value as a Jinja expression over the same context as the rule's templates:

    sms_templates:
      aliyun:
        code: SMS_4870001
        sign: 某某县民政局
        text: "${name}您好，您家的${item}${amount}元已发放。回TD退订"
        params: {name: "{{ resident.name }}", item: "{{ item.title }}", amount: "{{ params.amount|money }}"}

The text lives in the rule, next to the Jinja SMS template it must equal, so one file shows
both and `rules check` compares them (checking.py); it is part of the rule's version.
Aliyun's variables are sent by name, in the order they appear in the text. Tencent's text
writes them `{1}`, `{2}`, ... (its console's form) and TemplateParamSet is positional, so they
are sent by number, params keyed by the number:

      tencent:
        code: "1234567"
        sign: 某某县民政局
        text: "{1}您好，您家的{2}{3}元已发放。回TD退订"
        params: {1: "{{ resident.name }}", 2: "{{ item.title }}", 3: "{{ params.amount|money }}"}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import did_you_mean
from ..yamlsafe import YMap
from .model import Mark

KINDS = ("aliyun", "tencent")
TEMPLATE_KEYS = ("code", "sign", "text", "params")
VARIABLE = re.compile(r"\$\{(\w+)\}")
TENCENT_VARIABLE = re.compile(r"\{(\d+)\}")


@dataclass(frozen=True)
class RegisteredTemplate:
    """One provider kind's registered template of a rule, with where each part stood."""

    kind: str
    code: str
    sign: str
    text: str
    params: tuple[tuple[str, str], ...]  # (variable, Jinja expression), in the text's order
    mark: Mark
    marks: dict[str, Mark] = field(default_factory=dict, compare=False)  # by part: code, text, params.<var>

    def where(self, part: str) -> Mark:
        return self.marks.get(part, self.mark)


def variables(text: str) -> list[str]:
    """The text's variables, each once, in the order they are sent: ${name} (Aliyun) in the
    text's order, {1} (Tencent) by number, since Tencent's TemplateParamSet is positional
    ({2} before {1} in the text is still the second value)."""
    found = VARIABLE.findall(text)
    if found:
        return list(dict.fromkeys(found))
    return sorted(set(TENCENT_VARIABLE.findall(text)), key=int)


def fill(text: str, values: dict[str, str]) -> str:
    """The registered text with its variables replaced: what the handset shows after the signature."""
    if VARIABLE.search(text):
        return VARIABLE.sub(lambda m: values.get(m.group(1), m.group(0)), text)
    return TENCENT_VARIABLE.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def _style(kind: str, text: str, names: list[str]) -> str:
    """What is wrong with how the text writes its variables for this kind ("" if nothing)."""
    if kind == "aliyun" and not VARIABLE.search(text) and TENCENT_VARIABLE.search(text):
        return "Aliyun writes variables as ${name}, not {1}"
    if kind == "tencent":
        if VARIABLE.search(text):
            return "Tencent writes variables as {1}, {2}, ..., not ${name}"
        if names != [str(i) for i in range(1, len(names) + 1)]:
            return f"Tencent's variables are numbered {{1}} to {{n}} without gaps, not {', '.join(names)}"
    return ""


def parse(node: Any, mark: Mark, bad: Any) -> dict[str, RegisteredTemplate]:
    """The `sms_templates:` mapping; `bad(mark, message)` records each problem."""
    if not isinstance(node, YMap):
        bad(mark, "sms_templates: must map a provider kind (aliyun, tencent) to {code, sign, text, params}")
        return {}
    out: dict[str, RegisteredTemplate] = {}
    for kind, spec in node.items():
        if kind not in KINDS:
            bad(
                node.key_where(kind),
                f"sms_templates: unknown provider kind {kind!r}{did_you_mean(kind, KINDS)}",
            )
            continue
        where = node.where(kind)
        if not isinstance(spec, YMap):
            bad(where, f"sms_templates.{kind}: must be a mapping with code, sign, text, params")
            continue
        found = _one(kind, spec, bad)
        if found is not None:
            out[kind] = found
    return out


def _one(kind: str, spec: YMap, bad: Any) -> RegisteredTemplate | None:
    ok = True
    for key in spec:
        if key not in TEMPLATE_KEYS:
            bad(
                spec.key_where(key),
                f"unknown key {key!r} in sms_templates.{kind}{did_you_mean(key, TEMPLATE_KEYS)}",
            )
            ok = False
    for key in ("code", "sign", "text"):
        value = spec.get(key)
        if key == "code" and isinstance(value, int) and not isinstance(value, bool):
            continue  # Tencent's template ids are numbers
        if not isinstance(value, str) or not value.strip():
            bad(spec.where(key), f"sms_templates.{kind}.{key} must be a non-empty string")
            ok = False
    params = spec.get("params") if "params" in spec else {}
    if not isinstance(params, dict):
        bad(spec.where("params"), f"sms_templates.{kind}.params must map each variable to a Jinja expression")
        return None

    def at(var: str, key: bool = False) -> Mark:
        if not isinstance(params, YMap):
            return spec.where("params")
        return params.key_where(var) if key else params.where(var)

    for var, expr in params.items():
        if not isinstance(expr, str):
            bad(at(var), f"sms_templates.{kind}.params.{var} must be a string (a Jinja expression)")
            ok = False
    if not ok:
        return None
    text = str(spec["text"])
    names = variables(text)
    style = _style(kind, text, names)
    if style:
        bad(spec.where("text"), f"sms_templates.{kind}.text: {style}")
        return None
    for var in names:
        if var not in params:
            bad(
                spec.key_where("params"),
                f"sms_templates.{kind}: the text's variable {var!r} has no value in params",
            )
            ok = False
    for var in params:
        if var not in names:
            bad(at(var, True), f"sms_templates.{kind}.params.{var}: not a variable of the registered text")
            ok = False
    if not ok:
        return None
    marks = {"code": spec.where("code"), "sign": spec.where("sign"), "text": spec.where("text")}
    marks |= {f"params.{v}": at(v) for v in params}
    return RegisteredTemplate(
        kind,
        str(spec["code"]).strip(),
        str(spec["sign"]).strip(),
        text,
        tuple((v, str(params[v])) for v in names),
        spec.mark,
        marks,
    )
