"""Rendering by shape gives exactly the messages (and errors) that rendering per member gives."""

from __future__ import annotations

import random
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from notifier.errors import RuleError
from notifier.rendering.shapes import ShapedTemplate, analyse
from notifier.rendering.templates import TemplateSet, _env, missing
from notifier.status import Channel

FIELDS = ("name", "township", "village", "age", "phone")

SMS = (
    "【{{ item.department }}】{{ resident.name | default('居民') }}您好，"
    "{% if resident.township %}{{ resident.township }}{% else %}本地{% endif %}"
    "{{ resident.village|upper }}，截止{{ run.on_date }}。核验码 {{ verify_code }}"
)
LETTER = (
    "<h1>{{ item.title }}</h1><p>{{ resident.name | default('居民') }}"
    "{% if resident.township or resident.village %}（{{ resident.township | default('') }}"
    "{{ resident.village | default('') }}）{% endif %}</p><p>{{ resident.age }} {{ amount }}</p>"
)
EMAIL = (
    "{% block subject %}{{ item.title }} {{ resident.name|default('居民') }}{% endblock %}"
    "{% block body %}{{ resident.name }}\n  {{ resident.township|default('乡镇') }}  {% endblock %}"
    "{% block html %}<b>{{ resident.name }}</b> {{ verify_url }}{% endblock %}"
)
SOURCES = {Channel.SMS: SMS, Channel.LETTER: LETTER, Channel.EMAIL: EMAIL}
NAMES = {Channel.SMS: "t.sms.j2", Channel.LETTER: "t.letter.j2", Channel.EMAIL: "t.email.j2"}
TEXTS = ["王建国", "李<b>&", " 张 三 ", 'O\'Brien "x"', "{0}", "a\ue000b", "x" * 3, "赵\n钱"]


def _value(rng: random.Random, field: str) -> Any:
    if rng.random() < 0.25:
        return missing(f"resident.{field}")
    if field == "age":
        return rng.choice([0, 7, 65, Decimal("6.5")])
    return rng.choice(TEXTS)


def _context(rng: random.Random) -> dict[str, Any]:
    resident = {f: _value(rng, f) for f in FIELDS}
    code = rng.choice(["ABCDE-FGHJK", "<x>", None])
    return {
        "resident": resident,
        "item": {"title": "补助 & <通知>", "department": "县民政局"},
        "params": {},
        "run": {"id": None, "rule": "r", "on_date": date(2026, 4, 1)},
        "verify_code": code if code is not None else missing("verify_code"),
        "verify_url": f"/v/{code}" if code is not None else missing("verify_url"),
        "amount": rng.choice([Decimal("12.50"), missing("amount")]),
    }


def _values(shaped: ShapedTemplate, context: dict[str, Any]) -> list[Any]:
    return [context["resident"][i[1]] if len(i) == 2 else context[i[0]] for i in shaped.inputs]


def _outcome(fn: Any) -> Any:
    try:
        return fn()
    except RuleError as exc:
        return ("error", str(exc), [(p.file, p.line, p.message) for p in exc.problems])


@pytest.mark.parametrize("channel", list(SOURCES))
def test_shapes_render_what_members_render(channel: Channel) -> None:
    templates = TemplateSet(NAMES, SOURCES)
    shaped = ShapedTemplate.of(templates, channel, FIELDS)
    assert shaped is not None
    rng = random.Random(7)
    for _ in range(600):
        context = _context(rng)
        by_shape = _outcome(lambda c=context: shaped.render(_values(shaped, c), lambda: c))
        assert by_shape == _outcome(lambda c=context: templates.render(channel, c))
    # texts are filled in: far fewer renders than members (the letter keys on `age` and `amount`)
    assert 0 < len(shaped.shapes) <= 80


def test_inputs_printed_or_tested_are_opaque_others_keyed() -> None:
    tree = _env(False, {}).parse(SMS)
    assert analyse(tree, FIELDS) == {
        ("resident", "name"): True,
        ("resident", "township"): True,
        ("resident", "village"): False,  # through a filter other than default
        ("verify_code",): True,
    }


@pytest.mark.parametrize(
    "source",
    [
        "{% include 'other.j2' %}{{ resident.name }}",
        "{% macro m(x) %}{{ x }}{% endmacro %}{{ m(resident.name) }}",
        "{% set x %}{{ resident.name }}{% endset %}{{ x|upper }}",
        "{% filter upper %}{{ resident.name }}{% endfilter %}",
        "{% block b %}{{ resident.name }}{% endblock %}{{ self.b()|upper }}",
        "{% autoescape false %}{{ resident.name }}{% endautoescape %}",
        "{% for k in resident %}{{ k }}{% endfor %}",
        "{{ resident[key] }}",
        "{{ resident.items() }}",
        "{{ resident.unknown_field }}",
        "{% set verify_code = 'x' %}{{ verify_code }}",
    ],
)
def test_what_the_analysis_cannot_follow_is_rendered_per_member(source: str) -> None:
    assert analyse(_env(False, {}).parse(source), FIELDS) is None
