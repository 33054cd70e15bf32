"""The sandboxed, strict template set (segments, filters and masking have their own test files)."""

from __future__ import annotations

import pytest

from notifier.errors import RuleError
from notifier.rendering.templates import TemplateSet
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
