"""A strict YAML reader for files staff write by hand (rules, the data dictionary).

Why not yaml.safe_load: it forgets where values came from (errors must say file:line:col),
silently keeps the last of duplicate keys, reads `on:`/`no`/`Y` as booleans and accepts
tags. Here mappings and lists remember positions, keys are always strings, only
`true`/`false` are booleans, non-integers are exact Decimals, and tags, anchors and
aliases are refused.
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


_INT = re.compile(r"[-+]?(0|[1-9][0-9_]*)")
_DEC = re.compile(r"[-+]?([0-9][0-9_]*\.[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")
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


def load_yaml(text: str, filename: str) -> Any:
    """Parse one YAML document; raise InputError listing every located problem."""
    b = _Builder(filename)
    try:
        for tok in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(tok, yaml.TagToken):
                b.problem((tok.start_mark.line + 1, tok.start_mark.column + 1), "YAML tags are not allowed")
            elif isinstance(tok, (yaml.AnchorToken, yaml.AliasToken)):
                b.problem((tok.start_mark.line + 1, tok.start_mark.column + 1), "YAML anchors and aliases are not allowed")
        if b.problems:
            raise InputError(f"{filename}: not accepted", b.problems)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        m = exc.problem_mark or exc.context_mark
        line, col = (m.line + 1, m.column + 1) if m else (None, None)
        raise InputError(f"{filename}: invalid YAML",
                         [Problem(f"invalid YAML: {exc.problem or exc.context}", file=filename, line=line, column=col)]) from None
    except yaml.YAMLError as exc:
        raise InputError(f"{filename}: invalid YAML", [Problem(f"invalid YAML: {exc}", file=filename)]) from None
    value = b.build(node) if node is not None else None
    if b.problems:
        raise InputError(f"{filename}: not accepted", b.problems)
    return value
