"""Rendering notices: sandboxed Jinja2, undefined variables are errors, not blanks.

Templates come from a run's snapshot (their text as approved), never re-read from disk at
send time. Plain-text parts (SMS, e-mail subject and body) render without escaping; HTML
parts (the e-mail `html` block, letters) render from the same source with autoescape on.
"""
from __future__ import annotations

import traceback
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from ..errors import Problem, RuleError
from ..status import Channel
from .filters import FILTERS


@dataclass(frozen=True)
class Rendered:
    body: str
    subject: str | None = None
    html: str | None = None


def _env(autoescape: bool, sources: dict[str, str]) -> SandboxedEnvironment:
    # A FunctionLoader (unlike DictLoader) gives each template a file name, so errors raised
    # while rendering can be traced back to the template's line.
    loader = jinja2.FunctionLoader(lambda name: (sources[name], name, lambda: True) if name in sources else None)
    env = SandboxedEnvironment(loader=loader, undefined=jinja2.StrictUndefined,
                               autoescape=autoescape, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(FILTERS)
    return env


def display_value(value: Any) -> Any:
    """Decimals as people write them: 6.5 not 6.5000, 110 not 1.1E+2."""
    if isinstance(value, Decimal):
        return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()
    return value


class TemplateSet:
    """The compiled templates of one rule, keyed by channel."""

    def __init__(self, names: dict[Channel, str], sources: dict[Channel, str]) -> None:
        self.names = names
        by_name = {names[ch]: src for ch, src in sources.items()}
        self.text_env, self.html_env = _env(False, by_name), _env(True, by_name)
        self._text: dict[Channel, jinja2.Template] = {}
        self._html: dict[Channel, jinja2.Template] = {}
        problems = []
        for ch, name in names.items():
            try:
                if ch is Channel.LETTER:
                    self._html[ch] = self.html_env.get_template(name)
                else:
                    self._text[ch] = self.text_env.get_template(name)
                    if ch is Channel.EMAIL:
                        self._html[ch] = self.html_env.get_template(name)
                        missing = {"subject", "body"} - set(self._text[ch].blocks)
                        if missing:
                            problems.append(Problem(f"an e-mail template needs {{% block {sorted(missing)[0]} %}}",
                                                    file=name, line=1, column=1))
            except jinja2.TemplateSyntaxError as exc:
                problems.append(Problem(f"template syntax error: {exc.message}", file=name, line=exc.lineno, column=1))
        if problems:
            raise RuleError("template errors", problems)

    def render(self, channel: Channel, context: dict[str, Any]) -> Rendered:
        try:
            if channel is Channel.LETTER:
                return Rendered(self._html[channel].render(context).strip())
            tmpl = self._text[channel]
            if channel is Channel.SMS:
                return Rendered(" ".join(tmpl.render(context).split()))
            subject = " ".join(_block(tmpl, "subject", context).split())
            body = _block(tmpl, "body", context).strip() + "\n"
            html_t = self._html[channel]
            html = _block(html_t, "html", context).strip() if "html" in html_t.blocks else None
            return Rendered(body, subject, html)
        except Exception as exc:  # any error inside a template (undefined variable, None * 2, ...)
            name = self.names[channel]
            raise RuleError(f"{name}: cannot render", [Problem(f"{exc.__class__.__name__}: {exc}", file=name,
                                                               line=_template_line(exc, name), column=1)]) from None


def _block(tmpl: jinja2.Template, name: str, context: dict[str, Any]) -> str:
    return "".join(tmpl.blocks[name](tmpl.new_context(context)))


def _template_line(exc: BaseException, name: str) -> int | None:
    line = getattr(exc, "lineno", None)
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == name or frame.filename.endswith("/" + name):
            line = frame.lineno
    return line


def item_context(item: Any, domains: dict[str, str]) -> dict[str, Any]:
    return {"title": item.title, "domain": item.domain, "domain_label": domains.get(item.domain, item.domain),
            "department": item.department, "url": item.url,
            "publish_from": item.publish_from, "publish_until": item.publish_until}


def run_context(run_id: int | None, rule_id: str, on: date) -> dict[str, Any]:
    return {"id": run_id, "rule": rule_id, "on_date": on}
