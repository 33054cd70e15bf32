"""The catalogs: every status, role and channel has a Chinese name; en falls back to the ids."""

from __future__ import annotations

import pytest

from notifier.i18n import LABELS, label, translations
from notifier.identity import Role
from notifier.status import Channel, DeliveryStatus, RunStatus

VOCABULARY = [*DeliveryStatus, *RunStatus, *Channel, *Role]


@pytest.mark.parametrize("value", VOCABULARY, ids=str)
def test_every_status_role_and_channel_has_a_chinese_name(value: str) -> None:
    assert value in LABELS
    zh = label(value)
    assert zh != LABELS[value] and all("\u4e00" <= ch <= "\u9fff" for ch in zh), zh


def test_the_fixed_names_staff_read() -> None:
    assert [label(s) for s in ("pending", "sent", "delivered", "failed")] == [
        "待发送",
        "已发送",
        "已送达",
        "发送失败",
    ]
    assert [label(r) for r in Role] == ["经办", "审核", "审计", "管理员"]
    assert label("sent", "en") == "Sent" and label("sent", "xx") == "Sent"


def test_every_catalog_entry_is_translated() -> None:
    catalog = translations("zh_CN")
    missing = [m for m in LABELS.values() if catalog.gettext(m) == m]
    assert missing == []


def _template_messages() -> list[tuple[str, int, str]]:
    """(template, line, msgid) of every translatable string of the console's templates."""
    from pathlib import Path

    from jinja2.ext import babel_extract

    import notifier.console

    folder = Path(notifier.console.__file__).parent / "templates"
    out = []
    for path in sorted(folder.glob("*.html")):
        with path.open("rb") as f:
            for line, _func, message, _comments in babel_extract(f, ["_", "gettext"], [], {}):
                messages = [message] if isinstance(message, str) else list(message or ())
                out += [(path.name, line, m) for m in messages if m]  # None: _(a variable)
    return out


def test_every_console_string_has_a_chinese_translation() -> None:
    """A string added to a template without a zh_CN entry would show English to staff."""
    found = _template_messages()
    assert len(found) > 50  # the extractor did read the templates
    catalog = translations("zh_CN")
    missing = [f"{name}:{line}: {msgid!r}" for name, line, msgid in found if catalog.gettext(msgid) == msgid]
    assert missing == []


def test_a_translatable_error_keeps_its_english_text_and_reads_in_chinese_in_the_console() -> None:
    from notifier.errors import StateError
    from notifier.i18n import error_text

    exc = StateError.translatable("run %(run)s is already %(status)s", run=7, status="cancelled")
    assert exc.message == str(exc) == "run 7 is already cancelled"  # CLI, logs, JSON
    assert error_text(exc) == "批次 7 已经是「已取消」状态"
    assert error_text(exc, "en") == "run 7 is already Cancelled"
    assert error_text(StateError("plain")) == "plain"
