"""Rendering notices: sandboxed Jinja2, undefined variables are errors, not blanks.

Messages are rendered once, when a run is created (see messages.py), and stored; the
dispatcher sends the stored text. Plain-text parts (SMS, e-mail subject and body) render
without escaping; HTML parts (the e-mail `html` block, letters) render from the same source
with autoescape on.

A value a resident lacks is a `MissingValue`: a template may test it (`{% if %}`, `default`)
but printing it, or computing with it, is an error naming the variable, so "None" never reaches
a resident. Every render is bounded in time and output size, so a template loop cannot hang a
run's creation or fill memory.
"""

from __future__ import annotations

import hashlib
import json
import operator
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import lru_cache
from json.encoder import encode_basestring as _quote  # how JSONEncoder(ensure_ascii=False) quotes
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from ..errors import Problem, RuleError
from ..status import Channel
from .filters import FILTERS

MAX_OUTPUT_CHARS = 100_000  # one message; a letter page is a few kB
MAX_RENDER_SECONDS = 2.0  # one message


@dataclass(frozen=True)
class Rendered:
    body: str
    subject: str | None = None
    html: str | None = None

    @property
    def sha256(self) -> str:
        return digest(self.subject, self.body, self.html)


def digest(subject: str | None, body: str, html: str | None) -> str:
    """SHA-256 of a message as stored and sent: the JSON array [subject, body, html] (UTF-8,
    no spaces, non-ASCII as is), so an auditor can recompute it from an export."""
    if (
        type(body) is str
        and (subject is None or type(subject) is str)
        and (html is None or type(html) is str)
    ):
        # what _encode gives for three strings or nulls, without its per-call set-up: the
        # encoder quotes each string with this very function (json.encoder.encode_basestring)
        text = (
            ("[null," if subject is None else "[" + _quote(subject) + ",")
            + _quote(body)
            + (",null]" if html is None else "," + _quote(html) + "]")
        )
    else:
        text = _encode([subject, body, html])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
"""json.dumps(..., ensure_ascii=False, separators=(",", ":")) without a new encoder per call."""


class MissingValue(jinja2.StrictUndefined):
    """A field this resident has no value for. False in tests and `default` replaces it, but
    printing it or computing with it raises an error that names it."""

    __slots__ = ()

    def __bool__(self) -> bool:  # type: ignore[override]  # StrictUndefined raises; this one is falsy
        return False

    def __eq__(self, other: object) -> bool:  # type: ignore[override]
        return other is None or isinstance(other, jinja2.Undefined)

    def __ne__(self, other: object) -> bool:  # type: ignore[override]
        return not self.__eq__(other)

    def __hash__(self) -> int:  # type: ignore[override]
        return 0


@lru_cache(maxsize=1024)
def missing(name: str) -> MissingValue:
    return MissingValue(
        hint=f"{name} has no value for this resident (it would print as nothing or 'None'); "
        f"write {{{{ {name}|default('…') }}}} or test it with {{% if {name} %}}"
    )


class RenderLimit(Exception):
    """A template exceeded the time or output bound of one message."""


class OverLimit(RuleError):
    """A template that went past a RenderLimit (time or size); otherwise a RuleError like any."""


class _BoundedEnvironment(SandboxedEnvironment):
    """The sandbox plus a deadline checked on every call and attribute access, and `*`/`**`
    that cannot build huge strings or numbers: the checks a loop or a repeat must pass through."""

    intercepted_binops = frozenset({"*", "**"})
    deadline: float = float("inf")
    ticks: int = 0

    def _tick(self) -> None:
        self.ticks += 1
        if (
            not self.ticks & 63 and time.monotonic() > self.deadline
        ):  # the clock every 64th step: cheap enough
            raise RenderLimit(f"rendering took longer than {MAX_RENDER_SECONDS:g} s")

    def call(self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        self._tick()
        return super().call(__context, __obj, *args, **kwargs)

    def getattr(self, obj: Any, attribute: str) -> Any:
        self._tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        self._tick()
        return super().getitem(obj, argument)

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        self._tick()
        if operator_ == "**" and isinstance(right, (int, float)) and abs(right) > 64:
            raise RenderLimit(f"exponent {right} is too large")
        if operator_ == "*":
            for seq, n in ((left, right), (right, left)):
                if (
                    isinstance(seq, (str, list, tuple))
                    and isinstance(n, int)
                    and len(seq) * n > MAX_OUTPUT_CHARS
                ):
                    raise RenderLimit(f"a repeated value would exceed {MAX_OUTPUT_CHARS:,} characters")
        return (operator.pow if operator_ == "**" else operator.mul)(left, right)


def _env(autoescape: bool, sources: dict[str, str]) -> _BoundedEnvironment:
    # A FunctionLoader (unlike DictLoader) gives each template a file name, so errors raised
    # while rendering can be traced back to the template's line.
    loader = jinja2.FunctionLoader(
        lambda name: (sources[name], name, lambda: True) if name in sources else None
    )
    env = _BoundedEnvironment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        autoescape=autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    return env


def _bounded(chunks: Iterator[str], tmpl: jinja2.Template) -> str:
    out, size = [], 0
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_OUTPUT_CHARS:
            exc = RenderLimit(f"the message would be longer than {MAX_OUTPUT_CHARS:,} characters")
            exc.lineno = _paused_line(chunks, tmpl)  # type: ignore[attr-defined]
            raise exc
        out.append(chunk)
    return "".join(out)


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
                            problems.append(
                                Problem(
                                    f"an e-mail template needs {{% block {sorted(missing)[0]} %}}",
                                    file=name,
                                    line=1,
                                    column=1,
                                )
                            )
            except jinja2.TemplateSyntaxError as exc:
                problems.append(
                    Problem(f"template syntax error: {exc.message}", file=name, line=exc.lineno, column=1)
                )
        if problems:
            raise RuleError("template errors", problems)

    def render(self, channel: Channel, context: dict[str, Any]) -> Rendered:
        return finish(channel, self.raw(channel, context))

    def raw(self, channel: Channel, context: dict[str, Any]) -> Raw:
        """The template's output before whitespace is tidied (`finish` does that): the body, or
        for e-mail the subject, body and HTML blocks; a RuleError naming the line if it fails."""
        deadline = time.monotonic() + MAX_RENDER_SECONDS
        self.text_env.deadline = self.html_env.deadline = deadline
        try:
            if channel is Channel.LETTER:
                return (_bounded(self._html[channel].generate(context), self._html[channel]),)
            tmpl = self._text[channel]
            if channel is Channel.SMS:
                return (_bounded(tmpl.generate(context), tmpl),)
            ctx = tmpl.new_context(context)
            subject, body = _block(tmpl, "subject", ctx), _block(tmpl, "body", ctx)
            html_t = self._html[channel]
            html = _block(html_t, "html", html_t.new_context(context)) if "html" in html_t.blocks else None
            return (subject, body, html)
        except Exception as exc:  # any error inside a template (undefined variable, None * 2, ...)
            name = self.names[channel]
            what = (
                str(exc)
                if isinstance(exc, (jinja2.UndefinedError, RenderLimit))
                else f"{exc.__class__.__name__}: {exc}"
            )
            problems = [Problem(what, file=name, line=_template_line(exc, name), column=1)]
            raise (OverLimit if isinstance(exc, RenderLimit) else RuleError)(
                f"{name}: cannot render", problems
            ) from None
        finally:
            self.text_env.deadline = self.html_env.deadline = float("inf")


Raw = tuple[str | None, ...]
"""A template's output parts as rendered (TemplateSet.raw), before `finish`."""


def finish(channel: Channel, raw: Raw) -> Rendered:
    """A message as stored: SMS on one line, e-mail subject on one line and body ending in a
    newline, letters and HTML stripped."""
    if channel is Channel.LETTER:
        return Rendered(str(raw[0]).strip())
    if channel is Channel.SMS:
        return Rendered(" ".join(str(raw[0]).split()))
    subject, body, html = raw
    return Rendered(
        str(body).strip() + "\n", " ".join(str(subject).split()), html.strip() if html is not None else None
    )


def _paused_line(gen: Any, tmpl: jinja2.Template) -> int | None:
    """The template line where a paused render produced its last output: the innermost
    generator of the `yield from` chain that runs the template's own code."""
    line = None
    while gen is not None and getattr(gen, "gi_frame", None) is not None:
        if gen.gi_frame.f_code.co_filename == tmpl.filename:
            line = tmpl.get_corresponding_lineno(gen.gi_frame.f_lineno)
        gen = gen.gi_yieldfrom
    return line


def _block(tmpl: jinja2.Template, name: str, context: jinja2.runtime.Context) -> str:
    try:
        return _bounded(tmpl.blocks[name](context), tmpl)
    except Exception:
        # re-raises with the traceback at template lines, as render() does
        tmpl.environment.handle_exception()
        raise


def _template_line(exc: BaseException, name: str) -> int | None:
    line = getattr(exc, "lineno", None)
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == name or frame.filename.endswith("/" + name):
            line = frame.lineno
    return line


def item_context(item: Any, domains: dict[str, str]) -> dict[str, Any]:
    return {
        "title": item.title,
        "domain": item.domain,
        "domain_label": domains.get(item.domain, item.domain),
        "department": item.department,
        "url": item.url,
        "publish_from": item.publish_from,
        "publish_until": item.publish_until,
        "document_no": item.document_no,
    }


def template_context(
    resident: dict[str, Any],
    item: dict[str, Any],
    params: dict[str, Any],
    run_id: int | None,
    rule_id: str,
    on: date,
    verify: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The variables every template sees, built the same way for checks, previews and runs:
    an item field left empty in the rule file is missing, like a resident's. `verify` holds the
    message's `verify_code` and `verify_url` (a run's); checks and previews show a sample code."""
    return {
        "resident": resident,
        "item": {k: missing(f"item.{k}") if v is None or v == "" else v for k, v in item.items()},
        "params": params,
        "run": {"id": run_id, "rule": rule_id, "on_date": on},
        **(SAMPLE_VERIFY if verify is None else verify),
    }


SAMPLE_VERIFY = {"verify_code": "00000-00000", "verify_url": "/v/0000000000"}
"""What checks and previews print for `{{ verify_code }}` / `{{ verify_url }}` (verification.py)."""
