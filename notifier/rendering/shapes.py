"""Rendering a run's messages by shape: each template rendered once per distinct shape of its
per-member inputs, then filled in per member, instead of once per member.

A template's output depends on the run (item, parameters, date: the same for every member) and
on a few per-member inputs: the `resident.X` fields it names, `amount`, `verify_code` and
`verify_url`. Reading the template's syntax tree tells how each input is used:

- *opaque*: only printed (`{{ resident.name }}`, `{{ resident.name | default("居民") }}`) or
  tested for truth (`{% if resident.township or resident.village %}`). A text value then
  affects the output only where it is printed, so the template is rendered once with a marker
  in its place and each member's text (HTML-escaped where the template autoescapes) is put
  where the marker came out. Whether the value is missing (and the message printing it would
  give) is part of the shape, and so is an empty text: it is false where a marker is true.
- *keyed*: used any other way (a filter, arithmetic, a comparison, an argument), or not text:
  the value itself is part of the shape, so the template is rendered once per distinct value,
  "distinct" by type, equality and repr (Decimal 6.5 and 6.50 are equal but print apart).

A shape with texts is rendered twice, its markers numbered differently, so that anything else
that comes out looking like a marker (a register value or item field holding those private-use
characters, a string literal written "\\ue000") is told apart: such a shape is rendered per member.

Shapes are memoised per channel; a render error of a shape is the error of every member of that
shape (an opaque value cannot make a template fail: printing text never does). Anything the
analysis cannot follow falls back to rendering per member, as before: a template that includes,
extends or imports others, defines macros, captures output (`{% set %}…{% endset %}`,
`{% filter %}`, `self.block()`, `caller()`), switches autoescape, rebinds a per-member name or
uses `resident` other than through a declared field name. So does a member whose value is not
text, or contains a marker character, and a message that would exceed the output limit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any

from jinja2 import Undefined, nodes
from markupsafe import escape

from ..errors import RuleError
from ..status import Channel
from .templates import MAX_OUTPUT_CHARS, OverLimit, Rendered, TemplateSet, finish

PER_MEMBER = ("amount", "verify_code", "verify_url")
"""The context's per-member names besides `resident` (templates.template_context, messages.py)."""

_OPEN, _CLOSE = "\ue000", "\ue001"  # private-use characters: never escaped, never in notices
_MARK = re.compile(f"{_OPEN}([0-9]+){_CLOSE}")
_UNFOLLOWED = (
    nodes.Extends,
    nodes.Include,
    nodes.Import,
    nodes.FromImport,
    nodes.Macro,
    nodes.CallBlock,
    nodes.FilterBlock,
    nodes.AssignBlock,
    nodes.EvalContextModifier,
)
_CAPTURING = frozenset({"self", "super", "caller", "varargs", "kwargs"})
_MISSING = object()  # in a shape key: the member lacks this value
_TEXT = object()  # in a shape key: an opaque text value, filled in per member
_PER_MEMBER = object()  # this member cannot be rendered by shape
_FULL = object()  # cached: this shape is rendered per member
MAX_SHAPES = 4096  # per channel: past that, new shapes are rendered per member (keyed values vary)

Input = tuple[str, ...]
"""("resident", field) or (name,) for a name of PER_MEMBER."""


def analyse(tree: nodes.Template, fields: Collection[str]) -> dict[Input, bool] | None:
    """The per-member inputs of a template and whether each is opaque; None when the template
    does something the analysis does not follow (see the module docstring)."""
    if any(True for _ in tree.find_all(_UNFOLLOWED)):
        return None
    found: dict[Input, bool] = {}
    for node, parents in _walk(tree, ()):
        if not isinstance(node, nodes.Name):
            continue
        if node.name in _CAPTURING:
            return None
        if node.name not in PER_MEMBER and node.name != "resident":
            continue
        if node.ctx != "load":
            return None
        key: Input
        if node.name == "resident":
            attr = _field(parents[-1] if parents else None, node)
            if attr is None or attr not in fields or hasattr(dict, attr):
                return None
            key, at, above = ("resident", attr), parents[-1], parents[:-1]
        else:
            key, at, above = (node.name,), node, parents
        found[key] = found.get(key, True) and _opaque(at, above)
    return found


def _walk(
    node: nodes.Node, parents: tuple[nodes.Node, ...]
) -> Iterator[tuple[nodes.Node, tuple[nodes.Node, ...]]]:
    yield node, parents
    for child in node.iter_child_nodes():
        yield from _walk(child, (*parents, node))


def _field(parent: nodes.Node | None, name: nodes.Name) -> str | None:
    """The field `resident.X` / `resident["X"]` names, or None for any other use of `resident`."""
    if isinstance(parent, nodes.Getattr) and parent.node is name:
        return parent.attr
    if (
        isinstance(parent, nodes.Getitem)
        and parent.node is name
        and isinstance(parent.arg, nodes.Const)
        and isinstance(parent.arg.value, str)
    ):
        return parent.arg.value
    return None


def _opaque(node: nodes.Node, parents: tuple[nodes.Node, ...]) -> bool:
    """Whether this use only prints the value (maybe through `default`) or tests its truth."""
    if not parents:
        return False
    parent = parents[-1]
    if isinstance(parent, nodes.Output):
        return True
    if (
        isinstance(parent, nodes.Filter)
        and parent.name in ("default", "d")
        and parent.node is node
        and all(isinstance(a, nodes.Const) for a in parent.args)
        and not (parent.kwargs or parent.dyn_args or parent.dyn_kwargs)
        and len(parents) > 1
        and isinstance(parents[-2], nodes.Output)
    ):
        return True
    i = len(parents) - 1
    while i >= 0 and isinstance(parents[i], (nodes.And, nodes.Or, nodes.Not)):
        node, i = parents[i], i - 1
    return (
        i >= 0
        and isinstance(parents[i], (nodes.If, nodes.CondExpr))
        and getattr(parents[i], "test", None) is node
    )


class _Shape:
    """One shape's output: per part, a format string with the members' texts as {0}, {1}..."""

    __slots__ = ("parts",)

    def __init__(self, parts: list[str | None]) -> None:
        self.parts = parts


class ShapedTemplate:
    """One channel's template of a TemplateSet, rendered by shape (see the module docstring)."""

    def __init__(self, templates: TemplateSet, channel: Channel, inputs: dict[Input, bool]) -> None:
        self.templates, self.channel = templates, channel
        self.inputs: tuple[Input, ...] = tuple(inputs)
        self.opaque = tuple(inputs.values())
        self.html = tuple(
            channel is Channel.LETTER or (channel is Channel.EMAIL and i == 2) for i in range(3)
        )
        self.shapes: dict[tuple[Any, ...], _Shape | RuleError | object] = {}
        self.escaped: dict[str, str] = {}  # text -> HTML (townships, villages and names repeat)

    def _escape(self, text: str) -> str:
        html = self.escaped.get(text)
        if html is None:
            html = str(escape(text))
            if len(self.escaped) < 100_000:
                self.escaped[text] = html
        return html

    @classmethod
    def of(cls, templates: TemplateSet, channel: Channel, fields: Collection[str]) -> ShapedTemplate | None:
        """The shaped template of `channel`, or None when it must be rendered per member."""
        env = templates.html_env if channel is Channel.LETTER else templates.text_env
        name = templates.names[channel]
        source = env.loader.get_source(env, name)[0] if env.loader else ""
        if _OPEN in source or _CLOSE in source:
            return None
        inputs = analyse(env.parse(source), fields)
        return None if inputs is None else cls(templates, channel, inputs)

    def render(self, values: Sequence[Any], context: Callable[[], dict[str, Any]]) -> Rendered:
        """The message for a member whose inputs (in `self.inputs` order) are `values`;
        `context()` is the member's whole template context, built only when it is needed."""
        key, texts = self._key(values)
        shape = self.shapes.get(key) if key is not None else _PER_MEMBER
        if shape is None and key is not None:
            shape = self._shape(key, values, context())
            if len(self.shapes) < MAX_SHAPES:
                self.shapes[key] = shape
        if isinstance(shape, _Shape):
            raw = self._fill(shape, texts)
            if raw is not None:
                return finish(self.channel, raw)
        elif isinstance(shape, RuleError):
            raise shape
        return self.templates.render(self.channel, context())

    def _key(self, values: Sequence[Any]) -> tuple[tuple[Any, ...] | None, list[str]]:
        key: list[Any] = []
        texts: list[str] = []
        hashable = True
        for value, opaque in zip(values, self.opaque, strict=True):
            kind = type(value)
            if kind is str:
                if opaque and value:  # '' is false where a marker is true: keyed
                    if _OPEN in value or _CLOSE in value:
                        return None, texts
                    key.append(_TEXT)
                    texts.append(value)
                else:
                    key.append((kind, value))
            elif isinstance(value, Undefined):
                # its type decides its truth, its message the error printing it raises
                key.append((_MISSING, kind, value._undefined_message))
            elif kind is int:
                key.append((kind, value))
            else:  # equal is not enough: Decimal 6.5 / 6.50, -0.0 / 0.0, one instant in two zones
                key.append((kind, value, repr(value)))
                hashable = False
        k = tuple(key)
        if not hashable:
            try:
                hash(k)
            except TypeError:
                return None, texts
        return k, texts

    def _shape(self, key: tuple[Any, ...], values: Sequence[Any], context: dict[str, Any]) -> object:
        """Render the template for this shape with a marker for each opaque text: twice when
        there are texts, numbered 0..n-1 then n..2n-1, so that text from elsewhere that looks
        like a marker (a register value, an item field, a string literal "\\ue000") is told
        from the real ones: it comes out the same both times."""
        n = sum(1 for k in key if k is _TEXT)
        try:
            first = self._marked(key, values, context, 0)
            second = self._marked(key, values, context, n) if n else first
        except OverLimit:  # the markers are not the texts (length), nor is the clock: per member
            return _FULL
        except RuleError as exc:
            return exc
        parts: list[str | None] = []
        for a, b in zip(first, second, strict=True):
            if a is None or b is None:
                if a is not b:
                    return _FULL
                parts.append(None)
                continue
            pa, pb = _MARK.split(a), _MARK.split(b)
            if len(pa) != len(pb):
                return _FULL
            fmt = []
            for i, (x, y) in enumerate(zip(pa, pb, strict=True)):
                if i % 2 == 0:
                    if x != y or _OPEN in x or _CLOSE in x:  # a marker character from elsewhere
                        return _FULL
                    fmt.append(x.replace("{", "{{").replace("}", "}}"))
                elif int(x) >= n or int(y) != int(x) + n:  # a look-alike, not one of the markers
                    return _FULL
                else:
                    fmt.append("{%d}" % int(x))
            parts.append("".join(fmt))
        return _Shape(parts)

    def _marked(
        self, key: tuple[Any, ...], values: Sequence[Any], context: dict[str, Any], first: int
    ) -> tuple[str | None, ...]:
        """The template's raw output with the opaque texts replaced by markers first, first+1..."""
        marked = dict(context, resident=dict(context.get("resident") or {}))
        n = first
        for (inp, value), k in zip(zip(self.inputs, values, strict=True), key, strict=True):
            if k is _TEXT:
                value = f"{_OPEN}{n}{_CLOSE}"
                n += 1
            if len(inp) == 2:
                marked["resident"][inp[1]] = value
            else:
                marked[inp[0]] = value
        return self.templates.raw(self.channel, marked)

    def _fill(self, shape: _Shape, texts: list[str]) -> tuple[str | None, ...] | None:
        """The shape's parts with this member's texts; None when one would exceed the limit."""
        out: list[str | None] = []
        escaped: list[str] | None = None
        for part, html in zip(shape.parts, self.html, strict=False):
            if part is None:
                out.append(None)
                continue
            if html:
                if escaped is None:
                    known = self.escaped
                    escaped = [known.get(t) or self._escape(t) for t in texts]
                filled = part.format(*escaped)
            else:
                filled = part.format(*texts)
            if len(filled) > MAX_OUTPUT_CHARS:
                return None
            out.append(filled)
        return tuple(out)
