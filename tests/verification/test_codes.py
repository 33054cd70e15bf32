"""Verification codes (issue 13, item 2): 10 Crockford base32 characters of an HMAC under the
county's secret over (notice, resident, channel); typed codes forgiven their case, I/L/O and
separators; stored with each message at run creation and printed where templates ask."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from notifier import runs
from notifier.app import App
from notifier.errors import ConfigError, RenderError
from notifier.storage.schema import run_messages
from notifier.verification import ALPHABET, DeliveryIdentity, Verifier, display, normalise
from tests.support.campaign import ON, rule
from tests.verification.conftest import SECRET

KEY = DeliveryIdentity("farm-subsidy-2026", "F01", "sms")


def test_a_code_is_ten_crockford_characters_fixed_by_secret_notice_resident_and_channel() -> None:
    v = Verifier(SECRET)
    code = v.code(KEY)
    assert len(code) == 10 and set(code) <= set(ALPHABET) and not set(code) & set("ILOU")
    assert v.code(DeliveryIdentity("farm-subsidy-2026", "F01", "sms")) == code  # stable
    others = {
        v.code(DeliveryIdentity("farm-subsidy-2026", "F01", "letter")),  # a fallback has its own
        v.code(DeliveryIdentity("farm-subsidy-2026", "F02", "sms")),
        v.code(DeliveryIdentity("farm-subsidy-2026@2026-05-01", "F01", "sms")),
        Verifier(SECRET + "x").code(KEY),  # without the secret nobody computes it
    }
    assert code not in others and len(others) == 4
    # The fields cannot be shifted into one another: ("a", "bc") and ("ab", "c") differ.
    assert v.code(DeliveryIdentity("a", "bc", "sms")) != v.code(DeliveryIdentity("ab", "c", "sms"))


def test_codes_spread_over_all_fifty_bits() -> None:
    v = Verifier(SECRET)
    codes = [v.code(DeliveryIdentity("n", f"R{i:05d}", "sms")) for i in range(2000)]
    assert len(set(codes)) == 2000
    for position in range(10):  # every position takes (nearly) every character: no fixed bits
        assert len({c[position] for c in codes}) == 32


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("7K3QZ-M9X2A", "7K3QZM9X2A"),
        ("7k3qz m9x2a", "7K3QZM9X2A"),
        ("  7K3QZM9X2A ", "7K3QZM9X2A"),
        ("7K3QZ\u3000M9X2A", "7K3QZM9X2A"),  # a full-width space from a Chinese keyboard
        ("IL0O0-ABCDE", "11000ABCDE"),  # I, L read as 1; O as 0
        ("il0o0abcde", "11000ABCDE"),
        ("7K3QZ-M9X2", None),  # too short
        ("7K3QZ-M9X2AB", None),  # too long
        ("7K3QZ-M9X2U", None),  # U is not in the alphabet
        ("7K3QZ/M9X2A", None),
        ("", None),
        ("１２３４５６７８９０", None),  # full-width digits are not read as codes
    ],
)
def test_typed_codes_are_normalised(typed: str, expected: str | None) -> None:
    assert normalise(typed) == expected


def test_display_and_url() -> None:
    assert display("7K3QZM9X2A") == "7K3QZ-M9X2A"
    assert Verifier(SECRET, "https://x.gov.cn/").url("7K3QZM9X2A") == "https://x.gov.cn/v/7K3QZM9X2A"
    assert SECRET not in repr(Verifier(SECRET))


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least 16"):
        Verifier("short")


def test_each_stored_message_carries_its_code_and_templates_print_it(vapp: App) -> None:
    run_id = runs.create_run(vapp, rule(vapp), ON, "clerk").run
    m = run_messages
    with vapp.engine.connect() as conn:
        rows = {
            (r.resident_id, r.channel): r
            for r in conn.execute(sa.select(m.c.resident_id, m.c.channel, m.c.body, m.c.verify_code))
        }
    v = Verifier(SECRET, "https://notice.example.gov.cn")
    sms = rows[("F01", "sms")]
    assert sms.verify_code == v.code(DeliveryIdentity("farm-subsidy-2026", "F01", "sms"))
    assert f"核验码{display(sms.verify_code)} https://notice.example.gov.cn/v/{sms.verify_code}" in sms.body
    letter = rows[("F01", "letter")]  # the fallback letter rendered with the run: its own code
    assert letter.verify_code and letter.verify_code != sms.verify_code
    assert all(re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{10}", r.verify_code) for r in rows.values())
    assert len({r.verify_code for r in rows.values()}) == len(rows)
    assert run_id


def test_without_the_secret_a_template_printing_the_code_refuses_the_run(
    vapp: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOTIFIER_VERIFY_SECRET")
    with pytest.raises(RenderError) as caught:
        runs.create_run(vapp, rule(vapp), ON, "clerk")
    text = str(caught.value) + " ".join(p.message for p in caught.value.problems)
    assert "NOTIFIER_VERIFY_SECRET" in text and "verification codes need a secret" in text
    with vapp.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(run_messages)).scalar_one() == 0


def test_the_lookup_by_code_is_an_indexed_query(vapp: App) -> None:
    indexes = sa.inspect(vapp.engine).get_indexes("run_messages")
    assert [i["column_names"] for i in indexes if i["name"] == "ix_run_messages_verify_code"] == [
        ["verify_code"]
    ]
    if vapp.engine.dialect.name == "sqlite":  # and SQLite's planner uses it
        with vapp.engine.connect() as conn:
            plan = conn.execute(
                sa.text("EXPLAIN QUERY PLAN SELECT id FROM run_messages WHERE verify_code = '0000000000'")
            ).all()
        assert "ix_run_messages_verify_code" in " ".join(str(r) for r in plan)
