"""The sandboxed, strict template set (segments, filters and masking have their own test files)."""

from __future__ import annotations

import hashlib
import json

import pytest

from notifier.errors import RuleError
from notifier.rendering.templates import TemplateSet, digest
from notifier.status import Channel


def test_templates_are_sandboxed_and_strict() -> None:
    ts = TemplateSet(
        {Channel.SMS: "a.sms.j2", Channel.EMAIL: "a.email.j2", Channel.LETTER: "a.letter.j2"},
        {
            Channel.SMS: "{{ resident.name }}：{{ amount | money }}",
            Channel.EMAIL: "{% block subject %}关于 {{ resident.name }}{% endblock %}"
            "{% block body %}正文 <{{ resident.name }}>{% endblock %}"
            "{% block html %}<p>{{ resident.name }}</p>{% endblock %}",
            Channel.LETTER: "<p>{{ resident.name }}</p>",
        },
    )
    ctx = {"resident": {"name": "<王>"}, "amount": 5}
    assert ts.render(Channel.SMS, ctx).body == "<王>：¥5.00"
    email = ts.render(Channel.EMAIL, ctx)
    assert (email.subject, email.body, email.html) == ("关于 <王>", "正文 <<王>>\n", "<p>&lt;王&gt;</p>")
    assert ts.render(Channel.LETTER, ctx).body == "<p>&lt;王&gt;</p>"
    with pytest.raises(RuleError) as err:
        ts.render(Channel.SMS, {"resident": {}})
    assert err.value.problems[0].file == "a.sms.j2" and err.value.problems[0].line == 1
    evil = TemplateSet(
        {Channel.SMS: "e.sms.j2"}, {Channel.SMS: "{{ ''.__class__.__mro__[1].__subclasses__() }}"}
    )
    with pytest.raises(RuleError, match="unsafe|SecurityError"):
        evil.render(Channel.SMS, {})


@pytest.mark.parametrize(
    "parts",
    [
        (None, "王建国您好", None),
        ("主题", "正文\n", "<p>王</p>"),
        ("", "", ""),
        (None, 'q"\\/\b\f\n\r\t\x00\x1f\x7f\u2028\u2029\U0001f600', "é ü ß"),
        ("a", "b", None),
        (None, "b", "c"),
    ],
)
def test_digest_is_the_sha256_of_the_json_array(parts: tuple[str | None, str, str | None]) -> None:
    """The stored sha256 (an auditor recomputes it from an export): the fast path must give what
    json.dumps gives, byte for byte."""
    text = json.dumps(list(parts), ensure_ascii=False, separators=(",", ":"))
    assert digest(*parts) == hashlib.sha256(text.encode("utf-8")).hexdigest()
