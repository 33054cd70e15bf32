"""SMS segments, template filters, masking and the sandboxed template set."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest
from hypothesis import given, strategies as st

from notifier.errors import RuleError
from notifier.masking import mask_email, mask_id_number, mask_name, mask_phone, mask_text
from notifier.rendering.filters import cn_date, cn_datetime, money
from notifier.rendering.segments import GSM_BASIC, GSM_EXTENDED, count_segments
from notifier.rendering.templates import TemplateSet
from notifier.status import Channel


@pytest.mark.parametrize("text, encoding, units, segments", [
    ("", "GSM-7", 0, 0),
    ("a" * 160, "GSM-7", 160, 1),
    ("a" * 161, "GSM-7", 161, 2),
    ("a" * 306, "GSM-7", 306, 2),
    ("a" * 307, "GSM-7", 307, 3),
    ("€" * 80, "GSM-7", 160, 1),
    ("a" * 152 + "€" + "a" * 10, "GSM-7", 164, 2),       # the escape pair fits at the end of part 1
    ("a" * 152 + "a€" + "a" * 10, "GSM-7", 165, 2),
    ("您好", "UCS-2", 2, 1),
    ("汉" * 70, "UCS-2", 70, 1),
    ("汉" * 71, "UCS-2", 71, 2),
    ("汉" * 134, "UCS-2", 134, 2),
    ("汉" * 135, "UCS-2", 135, 3),
    ("汉" * 66 + "😀" + "汉" * 10, "UCS-2", 78, 2),       # 66 + 2 > 67: the surrogate pair moves to part 2
])
def test_segments_table(text: str, encoding: str, units: int, segments: int) -> None:
    info = count_segments(text)
    assert (info.encoding, info.units, info.segments) == (encoding, units, segments)


def reference_segments(text: str) -> int:
    """Split for real: put characters into parts, never splitting a two-unit character."""
    gsm = all(c in GSM_BASIC or c in GSM_EXTENDED for c in text)
    size = (lambda c: 2 if c in GSM_EXTENDED else 1) if gsm else (lambda c: 2 if ord(c) > 0xFFFF else 1)
    single, part = (160, 153) if gsm else (70, 67)
    total = sum(size(c) for c in text)
    if total == 0:
        return 0
    if total <= single:
        return 1
    parts, used = [[]], 0
    for c in text:
        if used + size(c) > part:
            parts.append([])
            used = 0
        parts[-1].append(c)
        used += size(c)
    return len(parts)


alphabet = st.sampled_from(sorted(GSM_BASIC)[:20] + sorted(GSM_EXTENDED) + ["汉", "😀", "é", "a"])


@given(st.text(alphabet=alphabet, max_size=400))
def test_segments_match_reference(text: str) -> None:
    assert count_segments(text).segments == reference_segments(text)


@given(st.text(alphabet=alphabet, max_size=300), alphabet)
def test_appending_never_reduces_segments(text: str, extra: str) -> None:
    assert count_segments(text + extra).segments >= count_segments(text).segments


@pytest.mark.parametrize("value, expected", [
    (Decimal("1234.5"), "¥1,234.50"), (0, "¥0.00"), ("12.345", "¥12.35"), (-12, "-¥12.00"), (1000000, "¥1,000,000.00"),
    (0.1 + 0.2, "¥0.30"),
])
def test_money(value: object, expected: str) -> None:
    assert money(value) == expected


def test_dates_and_bad_values() -> None:
    assert cn_date(date(2026, 3, 2)) == "2026年3月2日" == cn_date("2026-03-02") == cn_date(datetime(2026, 3, 2, 9, 5))
    assert cn_datetime(datetime(2026, 3, 2, 9, 5)) == "2026年3月2日 09:05"
    with pytest.raises(ValueError, match="not an amount"):
        money("about 5")
    with pytest.raises(ValueError, match="not a date"):
        cn_date("next week")


def test_masking() -> None:
    assert mask_phone("+8613812345678") == mask_phone("13812345678") == "138****5678"
    assert mask_id_number("110101199003071234") == "110101********1234"
    assert (mask_name("张三"), mask_name("欧阳娜娜"), mask_name("王")) == ("张*", "欧***", "*")
    assert mask_email("zhangsan@example.com") == "z***@example.com"
    text = mask_text("call +86 138-1234-5678 or 13900001111, id 110101199003071234, mail zhangsan@example.com")
    assert "1234-5678" not in text and "13900001111" not in text and "19900307" not in text and "zhangsan" not in text
    assert "138****5678" in text and "139****1111" in text and "110101********1234" in text and "z***@example.com" in text


def test_templates_are_sandboxed_and_strict() -> None:
    ts = TemplateSet({Channel.SMS: "a.sms.j2", Channel.EMAIL: "a.email.j2", Channel.LETTER: "a.letter.j2"}, {
        Channel.SMS: "{{ resident.name }}：{{ amount | money }}",
        Channel.EMAIL: "{% block subject %}关于 {{ resident.name }}{% endblock %}{% block body %}正文 <{{ resident.name }}>{% endblock %}"
                       "{% block html %}<p>{{ resident.name }}</p>{% endblock %}",
        Channel.LETTER: "<p>{{ resident.name }}</p>",
    })
    ctx = {"resident": {"name": "<王>"}, "amount": 5}
    assert ts.render(Channel.SMS, ctx).body == "<王>：¥5.00"
    email = ts.render(Channel.EMAIL, ctx)
    assert (email.subject, email.body, email.html) == ("关于 <王>", "正文 <<王>>\n", "<p>&lt;王&gt;</p>")
    assert ts.render(Channel.LETTER, ctx).body == "<p>&lt;王&gt;</p>"
    with pytest.raises(RuleError) as err:
        ts.render(Channel.SMS, {"resident": {}})
    assert err.value.problems[0].file == "a.sms.j2" and err.value.problems[0].line == 1
    evil = TemplateSet({Channel.SMS: "e.sms.j2"}, {Channel.SMS: "{{ ''.__class__.__mro__[1].__subclasses__() }}"})
    with pytest.raises(RuleError, match="unsafe|SecurityError"):
        evil.render(Channel.SMS, {})
