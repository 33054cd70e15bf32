"""Rendering by shape gives exactly the messages (and errors) that rendering per member gives."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import jinja2
import pytest
from markupsafe import Markup

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


def _same_as_per_member(channel: Channel, source: str, residents: list[dict[str, Any]], **extra: Any) -> None:
    """Render `residents` (in order, then reversed: the first of a shape renders it) by shape
    and per member; every message and error must be the same."""
    if channel is Channel.EMAIL:
        source = "".join(f"{{% block {b} %}}{source}{{% endblock %}}" for b in ("subject", "body", "html"))
    templates = TemplateSet({channel: "t.j2"}, {channel: source})
    shaped = ShapedTemplate.of(templates, channel, FIELDS)
    assert shaped is not None, source
    for order in (residents, residents[::-1]):
        shaped.shapes.clear()
        for resident in order:
            context = {
                "resident": {f: resident.get(f, missing(f"resident.{f}")) for f in FIELDS},
                "item": {"title": "通知"},
                "params": {},
                "run": {"id": None, "rule": "r", "on_date": date(2026, 4, 1)},
                "verify_code": resident.get("name", missing("verify_code")),
                "verify_url": resident.get("village", missing("verify_url")),
                "amount": resident.get("age", missing("amount")),
                **extra,
            }
            by_shape = _outcome(lambda c=context: shaped.render(_values(shaped, c), lambda: c))
            assert by_shape == _outcome(lambda c=context: templates.render(channel, c)), (source, resident)


@pytest.mark.parametrize("channel", list(SOURCES))
@pytest.mark.parametrize(
    "source",
    [
        "{% if resident.name %}有{% else %}无{% endif %}{{ resident.name }}",
        "{{ resident.name | default('居民', true) }}",
        "{{ resident.name | d('居民', boolean=true) }}",
        "{{ '是' if resident.name else '否' }}|{{ resident.name }}",
        "{% if not resident.name or resident.village %}x{% endif %}{{ verify_code }}",
    ],
)
def test_an_empty_text_is_false_where_a_marker_would_be_true(channel: Channel, source: str) -> None:
    _same_as_per_member(channel, source, [{"name": "王", "village": "v"}, {"name": "", "village": ""}, {}])


@pytest.mark.parametrize("channel", list(SOURCES))
@pytest.mark.parametrize(
    "values",
    [
        [Decimal("6.5"), Decimal("6.50"), Decimal("6.500")],
        [Decimal("0"), Decimal("-0"), Decimal("0E+2")],
        [0.0, -0.0],
        [
            datetime(2026, 1, 1, 8, tzinfo=timezone(timedelta(hours=8))),
            datetime(2026, 1, 1, 0, tzinfo=timezone.utc),
        ],
    ],
)
def test_equal_values_that_print_differently_are_different_shapes(
    channel: Channel, values: list[Any]
) -> None:
    for source in ("{{ resident.age }}", "{{ amount }}", "{{ resident.age ~ '' }}"):
        _same_as_per_member(channel, source, [{"name": "王", "age": v} for v in values])


@pytest.mark.parametrize("channel", list(SOURCES))
@pytest.mark.parametrize(
    ("source", "village", "extra"),
    [
        # a register value that is not only printed (so not checked for marker characters)
        ("{{ resident.name }}{{ resident.village | upper }}", "\ue0000\ue001", {}),
        ("{{ resident.name }}{{ resident.village | upper }}", "\ue0001\ue001\ue0000\ue001", {}),
        # an item field, a string literal written with an escape, a character built by `format`
        ("{{ resident.name }}{{ item.title }}", "v", {"item": {"title": "\ue0000\ue001"}}),
        ('{{ resident.name }}{{ "\\ue0000\\ue001" }}', "v", {}),
        ("{{ resident.name }}{{ '%c0%c' | format(57344, 57345) }}", "v", {}),
        ("{{ item.title }}", "v", {"item": {"title": "\ue0000\ue001"}}),
    ],
)
def test_marker_look_alikes_are_not_filled_in(
    channel: Channel, source: str, village: str, extra: dict[str, Any]
) -> None:
    residents = [{"name": "王建国", "village": "v"}, {"name": "李四", "village": village}]
    _same_as_per_member(channel, source, residents, **extra)


def test_missing_values_with_different_messages_are_different_shapes() -> None:
    residents = [{}, {"name": missing("another.name")}, {"name": jinja2.StrictUndefined(name="x")}]
    for source in ("{{ resident.name }}", "{% if resident.name %}x{% endif %}"):
        _same_as_per_member(Channel.SMS, source, residents)


# Every way a template may use a value, each rendered for values of every kind the register,
# the amount and the verification code can hold (and some they cannot): by shape must say the same.
USES = [
    "{{ resident.name }}",
    "{{ resident['name'] }}|{{ resident.name }}",
    "{{ resident.name | length }}",
    "{{ resident.name | upper }}",
    "{{ resident.name | truncate(5) }}",
    "{{ resident.name | replace('a', 'b') }}",
    "{{ resident.name | first }}",
    "{{ resident.name | trim }}|{{ resident.name | title }}|{{ resident.name | center(9) }}",
    "{{ resident.name | e }}{{ resident.name | safe }}{{ resident.name | string }}",
    "{{ resident.name | list }}{{ resident.name | join('-') }}{{ resident.name | reverse }}",
    "{{ resident.name | striptags }}{{ resident.name | urlencode }}{{ resident.name | wordcount }}",
    "{% if resident.name is defined %}d{% endif %}{% if resident.name is none %}n{% endif %}",
    "{% if resident.name == 'a' %}A{% endif %}{{ resident.name }}",
    "{% if 'a' in resident.name %}A{% endif %}{{ resident.name }}",
    "{{ resident.name.upper() }}{{ resident.name[0] }}",
    "{% for c in resident.name %}[{{ c }}{{ loop.index }}]{% endfor %}",
    "{% set x = resident.name %}{{ x }}{{ resident.name }}",
    "{% with x = resident.name %}{{ x | upper }}{% endwith %}",
    "{% for i in [1, 2] %}{{ loop.index }}{{ resident.name }}{% endfor %}",
    "  {{- resident.name -}}  |\n  {{ resident.name }}\n",
    "{{ resident.name | default('x') }}{{ resident.name | d('y') }}{{ resident.name | default('') }}",
    "{{ resident.name | default(resident.village) }}{{ resident.name | default('a') | upper }}",
    "{% if resident.name | default('') %}t{% endif %}{{ resident.name | default('a') ~ 'b' }}",
    "{{ resident.name or 'z' }}{{ resident.name if resident.name }}",
    "{% if resident.name and resident.village %}{{ resident.village }}{% endif %}{{ resident.name }}",
    "{{ '{0}' }}{{ resident.name }}{{ '}' }}{{ resident.name }}{{ resident.village }}",
    "{{ item.title | replace('通', resident.name) }}{{ '%s' | format(resident.name) }}",
    "{{ resident.name * 2 }}{{ range(3) | join(resident.name) }}",
    "{% set ns = namespace(a=resident.name) %}{{ ns.a }}",
    "{{ resident.age }}{{ resident.age | default(0) }}{% if resident.age > 5 %}old{% endif %}",
    "{{ verify_code }} {{ verify_url }} {{ amount }}",
    "{{ amount | money }}{{ resident.age | yuan }}",
    "{% for x in [1] if resident.name %}{{ x }}{% endfor %}",
]
KINDS: list[Any] = [
    "a", "", " ", "ab c", "<b>&amp;", "{0}", "}", "a\ue000", Markup("<i>x</i>"), 0, 7, True, None,
    Decimal("6.5"), Decimal("6.50"), Decimal("-0"), -0.0, date(2026, 1, 2), "赵\n钱", "  x  ",
]  # fmt: skip


@pytest.mark.parametrize("channel", list(SOURCES))
@pytest.mark.parametrize("source", USES)
def test_every_use_of_every_kind_of_value(channel: Channel, source: str) -> None:
    residents = [
        {"name": v, "age": v, **({"village": vil} if vil is not None else {})}
        for v in KINDS
        for vil in ("v", None, "", "<&>")
    ]
    _same_as_per_member(channel, source, residents)
