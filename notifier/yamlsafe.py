"""A strict YAML reader for files staff write by hand (rules, the data dictionary).

Why not yaml.safe_load: it forgets where values came from (errors must say file:line:col),
silently keeps the last of duplicate keys, reads `on:`/`no`/`Y` as booleans and accepts
tags. Here mappings and lists remember positions, keys are always strings, only
`true`/`false` are booleans, non-integers are exact Decimals, and tags, anchors and
aliases are refused.

Input is bounded before anything costly happens: nesting deeper than MAX_DEPTH (PyYAML's
composer recurses, a few thousand `[` end in RecursionError), and numbers with more than
MAX_DIGITS digits or an exponent beyond ±MAX_EXPONENT (int() of 100k digits is refused by
Python, Decimal("1e999999999") is cheap to build but any arithmetic on it takes minutes and
gigabytes) are located problems, not tracebacks.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import yaml

from .errors import InputError, Problem

Mark = tuple[int, int]  # (line, column), 1-based


class YMap(dict):  # type: ignore[type-arg]
    """A mapping that remembers where it, each key and each value stood."""

    mark: Mark
    key_marks: dict[str, Mark]
    value_marks: dict[str, Mark]

    def where(self, key: str) -> Mark:
        return self.value_marks.get(key, self.mark)

    def key_where(self, key: str) -> Mark:
        return self.key_marks.get(key, self.mark)


class YList(list):  # type: ignore[type-arg]
    mark: Mark
    marks: list[Mark]

    def where(self, index: int) -> Mark:
        return self.marks[index] if 0 <= index < len(self.marks) else self.mark


MAX_DEPTH = 100  # nested mappings and lists, the document's own included
MAX_DIGITS = 40  # digits of a number
MAX_EXPONENT = 40  # |exponent| of a number written with e/E

_INT = re.compile(r"[-+]?(0|[1-9][0-9_]*)")
_DEC = re.compile(r"[-+]?([0-9][0-9_]*\.[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")
# Anything a reader could take for a number, with or without a dot (1e999999999 stays text here,
# but a decimal field would parse it later): the digit and exponent bounds apply to all of it.
_NUMBERISH = re.compile(
    r"[-+]?(?P<mantissa>[0-9][0-9_]*(\.[0-9_]*)?|\.[0-9][0-9_]*)([eE](?P<exp>[-+]?[0-9]+))?"
)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2})?")


def _mark(node: yaml.Node) -> Mark:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.problems: list[Problem] = []

    def problem(self, mark: Mark, message: str) -> None:
        self.problems.append(Problem(message, file=self.filename, line=mark[0], column=mark[1]))

    def scalar(self, node: yaml.ScalarNode) -> Any:
        text = node.value
        if node.style is not None:  # quoted or block scalar: always a string
            return text
        if text in ("", "~", "null", "Null", "NULL"):
            return None
        low = text.lower()
        if low in ("true", "false"):
            return low == "true"
        num = _NUMBERISH.fullmatch(text)
        if num and not self.bounded(node, num):
            return text
        if _INT.fullmatch(text):
            return int(text.replace("_", ""))
        if _DEC.fullmatch(text):
            return Decimal(text.replace("_", ""))
        try:
            if _DATE.fullmatch(text):
                return date.fromisoformat(text)
            if _DATETIME.fullmatch(text):
                return datetime.fromisoformat(text)
        except ValueError:
            self.problem(_mark(node), f"{text!r} is not a valid date")
            return text
        return text

    def bounded(self, node: yaml.ScalarNode, num: re.Match[str]) -> bool:
        """False (with a located problem) for a number too long or too large to compute with."""
        digits = sum(ch.isdigit() for ch in num["mantissa"])
        exp = num["exp"]
        if digits > MAX_DIGITS:
            self.problem(
                _mark(node),
                f"a number may have at most {MAX_DIGITS} digits, this one has {digits} "
                "(quote it if it is text)",
            )
            return False
        if exp is not None and (len(exp.lstrip("+-")) > 6 or abs(int(exp)) > MAX_EXPONENT):
            self.problem(
                _mark(node),
                f"a number's exponent must be between -{MAX_EXPONENT} and {MAX_EXPONENT} "
                "(quote it if it is text)",
            )
            return False
        return True

    def build(self, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node)
        if isinstance(node, yaml.SequenceNode):
            out = YList(self.build(n) for n in node.value)
            out.mark, out.marks = _mark(node), [_mark(n) for n in node.value]
            return out
        assert isinstance(node, yaml.MappingNode)
        result = YMap()
        result.mark, result.key_marks, result.value_marks = _mark(node), {}, {}
        for knode, vnode in node.value:
            if not isinstance(knode, yaml.ScalarNode):
                self.problem(_mark(knode), "a key must be a plain name")
                continue
            key = knode.value
            if key in result.key_marks:
                first = result.key_marks[key][0]
                self.problem(_mark(knode), f"duplicate key {key!r} (first given on line {first})")
                continue
            result[key] = self.build(vnode)
            result.key_marks[key], result.value_marks[key] = _mark(knode), _mark(vnode)
        return result


def _screen(text: str, b: _Builder) -> None:
    """One pass over the parser's events (the parser keeps its own stack, it does not recurse):
    refuse tags, anchors, aliases, and nesting deeper than MAX_DEPTH before the tree is built."""
    depth = 0
    for ev in yaml.parse(text, Loader=yaml.SafeLoader):
        where = (ev.start_mark.line + 1, ev.start_mark.column + 1)
        if isinstance(ev, yaml.AliasEvent) or getattr(ev, "anchor", None) is not None:
            b.problem(where, "YAML anchors and aliases are not allowed")
        elif isinstance(ev, yaml.NodeEvent) and getattr(ev, "tag", None) is not None:
            b.problem(where, "YAML tags are not allowed")
        if isinstance(ev, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                b.problem(where, f"nested deeper than {MAX_DEPTH} levels")
                return
        elif isinstance(ev, yaml.CollectionEndEvent):
            depth -= 1


def load_yaml(text: str, filename: str) -> Any:
    """Parse one YAML document; raise InputError listing every located problem."""
    b = _Builder(filename)
    try:
        _screen(text, b)
        if b.problems:
            raise InputError(f"{filename}: not accepted", b.problems)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        m = exc.problem_mark or exc.context_mark
        line, col = (m.line + 1, m.column + 1) if m else (None, None)
        raise InputError(
            f"{filename}: invalid YAML",
            [Problem(f"invalid YAML: {exc.problem or exc.context}", file=filename, line=line, column=col)],
        ) from None
    except yaml.YAMLError as exc:
        raise InputError(
            f"{filename}: invalid YAML", [Problem(f"invalid YAML: {exc}", file=filename)]
        ) from None
    value = b.build(node) if node is not None else None
    if b.problems:
        raise InputError(f"{filename}: not accepted", b.problems)
    return value
