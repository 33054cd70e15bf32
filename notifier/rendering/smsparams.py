"""The variables of a rule's registered SMS templates (rules/smstemplates.py), rendered per resident.

Each variable's value is a Jinja expression rendered in the same sandbox, with the same filters
and the same context as the rule's own templates, and with the SMS template's whitespace rule
(runs of white space become one space), so the registered text filled with these values can be
compared with what the rule's SMS template renders: `rules check` proves they are equal for
sample residents, and run creation refuses a resident for whom they differ (what approvers see
is what arrives). `limits` checks what the providers refuse: over-long variables, URLs in a
variable, over-long messages.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

import jinja2

from ..channels.templated import TemplateCall
from ..errors import Problem, RuleError
from ..rules.smstemplates import RegisteredTemplate, fill
from .templates import MAX_RENDER_SECONDS, _bounded, _env

MAX_VARIABLE = 35  # characters per variable: Aliyun's and Tencent's limit for notices
MAX_MESSAGE = 500  # characters of a whole message, signature included
URL = re.compile(r"(https?://|www\.)|\b[a-z0-9-]+\.(com|cn|net|org|gov|edu|top|xyz|cc)\b", re.IGNORECASE)


class TemplateParams:
    """The registered templates of one rule, their variables compiled once."""

    def __init__(self, file: str, registered: Mapping[str, RegisteredTemplate]) -> None:
        self.file, self.registered = file, dict(registered)
        self.env = _env(False, {})
        self._compiled: dict[str, list[tuple[str, jinja2.Template]]] = {}
        problems = []
        for kind, t in self.registered.items():
            compiled = []
            for var, expr in t.params:
                try:
                    compiled.append((var, self.env.from_string(expr)))
                except jinja2.TemplateSyntaxError as exc:
                    problems.append(self._problem(t, var, f"template syntax error: {exc.message}"))
            self._compiled[kind] = compiled
        if problems:
            raise RuleError("sms_templates errors", problems)

    def _problem(self, t: RegisteredTemplate, var: str, message: str) -> Problem:
        line, column = t.where(f"params.{var}")
        return Problem(
            f"sms_templates.{t.kind}.params.{var}: {message}", file=self.file, line=line, column=column
        )

    def render(self, context: dict[str, Any]) -> dict[str, TemplateCall]:
        """Each kind's template call for one resident; RuleError (file:line of the variable)
        if an expression cannot render for them."""
        out: dict[str, TemplateCall] = {}
        problems = []
        for kind, t in self.registered.items():
            values = []
            for var, tmpl in self._compiled[kind]:
                self.env.deadline = time.monotonic() + MAX_RENDER_SECONDS
                try:
                    values.append((var, " ".join(_bounded(tmpl.generate(context), tmpl).split())))
                except Exception as exc:  # undefined variable, a filter's ValueError, a render limit
                    what = (
                        str(exc)
                        if isinstance(exc, jinja2.UndefinedError)
                        else f"{exc.__class__.__name__}: {exc}"
                    )
                    problems.append(self._problem(t, var, what))
                finally:
                    self.env.deadline = float("inf")
            out[kind] = TemplateCall(t.code, t.sign, tuple(values))
        if problems:
            raise RuleError("sms_templates: cannot render", problems)
        return out

    def differences(
        self, calls: Mapping[str, TemplateCall], body: str, *, detail: bool = True
    ) -> list[Problem]:
        """Where the registered text, filled in, is not the SMS the rule's template rendered (after
        the 【signature】, if the template shows it). `detail` quotes where they part: for sample
        residents only, never in a real resident's error."""
        problems = []
        for kind, call in calls.items():
            t = self.registered[kind]
            filled, shown = fill(t.text, dict(call.params)), f"【{t.sign}】"
            target = body[len(shown) :] if body.startswith(shown) else body
            if filled != target:
                line, column = t.where("text")
                problems.append(
                    Problem(
                        f"sms_templates.{kind}.text filled in is not what the SMS template renders"
                        + (f": {_first_difference(filled, target)}" if detail else ""),
                        file=self.file,
                        line=line,
                        column=column,
                    )
                )
        return problems

    def limits(self, calls: Mapping[str, TemplateCall], max_variable: Mapping[str, int]) -> list[Problem]:
        """What the providers would refuse: a variable over its length or holding a URL, a message
        over MAX_MESSAGE characters (signature included)."""
        problems = []
        for kind, call in calls.items():
            t, limit = self.registered[kind], max_variable.get(kind, MAX_VARIABLE)
            for var, value in call.params:
                if len(value) > limit:
                    problems.append(
                        self._problem(
                            t, var, f"{len(value)} characters for a sample resident; at most {limit}"
                        )
                    )
                if URL.search(value):
                    problems.append(
                        self._problem(t, var, "a variable may not hold a URL (put it in the text)")
                    )
            total = len(f"【{t.sign}】") + len(fill(t.text, dict(call.params)))
            if total > MAX_MESSAGE:
                line, column = t.where("text")
                problems.append(
                    Problem(
                        f"sms_templates.{kind}: {total} characters with the signature; at most {MAX_MESSAGE}",
                        file=self.file,
                        line=line,
                        column=column,
                    )
                )
        return problems


def _first_difference(a: str, b: str) -> str:
    i = next((n for n, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return f"at character {i + 1}: registered {a[i : i + 20]!r}…, template {b[i : i + 20]!r}…"


def as_json(calls: Mapping[str, TemplateCall]) -> dict[str, Any] | None:
    """The calls as stored with a message (run_messages.templates)."""
    if not calls:
        return None
    return {
        k: {"code": c.code, "sign": c.sign, "params": [list(p) for p in c.params]} for k, c in calls.items()
    }


def from_json(raw: Any) -> dict[str, TemplateCall]:
    """Stored calls back as TemplateCalls (nothing stored: none)."""
    if not raw:
        return {}
    return {
        k: TemplateCall(str(v["code"]), str(v["sign"]), tuple((str(a), str(b)) for a, b in v["params"]))
        for k, v in raw.items()
    }
