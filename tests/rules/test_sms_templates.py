"""Registered SMS templates in rule files (`sms_templates:`): loaded with positions, proven by
`rules check` to give exactly the rule's SMS for sample residents, within the providers' limits,
and rendered per resident into the stored messages when a run is created."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from notifier.channels.registry import build_provider
from notifier.cli import main
from notifier.config import load_config
from notifier.rendering.smsparams import TemplateParams
from notifier.rules.smstemplates import fill, variables
from tests.support.project import write_config

RULE = "dibao-monthly-payment.yaml"
# what templates/dibao_payment.sms.j2 renders, after the 【signature】, as registered at Aliyun
TEXT = (
    "${name}您好：您家${year}年${month}月的最低生活保障金${amount}已发放，请注意查收。"
    "核实请登录https://example.gov.cn/zwgk/dibao或拨打12345。回TD退订"
)
PARAMS = {
    "name": '{{ resident.name | default("居民") }}',
    "year": "{{ run.on_date.year }}",
    "month": "{{ run.on_date.month }}",
    "amount": "{{ resident.dibao_monthly | money }}",
}


def block(
    text: str = TEXT, params: dict[str, str] | None = None, sign: str = "县民政局", extra: str = ""
) -> str:
    lines = [
        "sms_templates:",
        "  aliyun:",
        "    code: SMS_4870001",
        f"    sign: {sign}",
        f"    text: {json.dumps(text, ensure_ascii=False)}",
        "    params:",
        *[f"      {k}: {json.dumps(v, ensure_ascii=False)}" for k, v in (params or PARAMS).items()],
    ]
    return "\n".join(lines) + "\n" + extra


@pytest.fixture
def folder(tmp_path: Path, sqlite_url: str) -> Path:
    write_config(tmp_path / "p", sqlite_url)
    return tmp_path / "p"


def check(
    capsys: pytest.CaptureFixture[str], folder: Path, sms: str, config: str = ""
) -> tuple[int, list[Any]]:
    rule = folder / "rules" / RULE
    rule.write_text(rule.read_text(encoding="utf-8") + sms, encoding="utf-8")
    if config:
        cfg = folder / "notifier.toml"
        cfg.write_text(cfg.read_text(encoding="utf-8") + config, encoding="utf-8")
    code = main(["--config", str(folder / "notifier.toml"), "rules", "check", str(rule), "--json"])
    out, _ = capsys.readouterr()
    return code, json.loads(out)["errors"]


def line_of(folder: Path, needle: str) -> int:
    lines = (folder / "rules" / RULE).read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if needle in line)


def test_variables_and_fill() -> None:
    assert variables("${a}和${b}再${a}") == ["a", "b"]
    assert variables("{1}您好{2}") == ["1", "2"]
    assert fill("${a}和${b}", {"a": "甲", "b": "乙"}) == "甲和乙"


# The same notice registered at Tencent: {1}..{n}, params keyed by the number.
TENCENT_TEXT = (
    "{1}您好：您家{2}年{3}月的最低生活保障金{4}已发放，请注意查收。"
    "核实请登录https://example.gov.cn/zwgk/dibao或拨打12345。回TD退订"
)
TENCENT_PARAMS = dict(zip(["1", "2", "3", "4"], PARAMS.values(), strict=True))


def tencent_block(text: str = TENCENT_TEXT, params: dict[str, str] | None = None) -> str:
    lines = [
        "sms_templates:",
        "  tencent:",
        "    code: 2100871",
        "    sign: 县民政局",
        f"    text: {json.dumps(text, ensure_ascii=False)}",
        "    params:",
        *[f"      {k}: {json.dumps(v, ensure_ascii=False)}" for k, v in (params or TENCENT_PARAMS).items()],
    ]
    return "\n".join(lines) + "\n"


def test_tencent_variables_go_by_number() -> None:
    assert variables("{2}您好{1}，{2}") == ["1", "2"]  # TemplateParamSet is positional
    assert variables("{10}{9}{1}") == ["1", "9", "10"]
    assert fill("{2}和{1}", {"1": "甲", "2": "乙"}) == "乙和甲"


def test_a_tencent_template_that_matches_passes(capsys: pytest.CaptureFixture[str], folder: Path) -> None:
    assert check(capsys, folder, tencent_block()) == (0, [])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (TENCENT_TEXT.replace("{4}", "{5}"), "numbered {1} to {n} without gaps, not 1, 2, 3, 5"),
        (TENCENT_TEXT.replace("{1}", "${name}"), "Tencent writes variables as {1}"),
    ],
)
def test_tencent_variables_written_wrong_are_located(
    capsys: pytest.CaptureFixture[str], folder: Path, text: str, message: str
) -> None:
    code, errors = check(capsys, folder, tencent_block(text))
    assert code == 1
    [e] = errors
    assert message in e["message"] and e["line"] == line_of(folder, "    text:")


def test_an_aliyun_text_with_tencent_variables_is_located(
    capsys: pytest.CaptureFixture[str], folder: Path
) -> None:
    code, errors = check(capsys, folder, block(TENCENT_TEXT, TENCENT_PARAMS))
    assert code == 1
    [e] = errors
    assert "Aliyun writes variables as ${name}" in e["message"] and e["line"] == line_of(folder, "    text:")


def test_a_registered_template_that_matches_passes(capsys: pytest.CaptureFixture[str], folder: Path) -> None:
    code, errors = check(capsys, folder, block())
    assert (code, errors) == (0, [])


def test_a_text_that_differs_is_refused_with_its_line(
    capsys: pytest.CaptureFixture[str], folder: Path
) -> None:
    code, errors = check(capsys, folder, block(TEXT.replace("请注意查收", "请查收")))
    assert code == 1
    [e] = errors
    assert e["file"].endswith(RULE) and e["line"] == line_of(folder, "    text:")
    assert "not what the SMS template renders" in e["message"] and "注意查收" in e["message"]


def test_a_wrong_signature_is_a_difference(capsys: pytest.CaptureFixture[str], folder: Path) -> None:
    code, errors = check(capsys, folder, block(sign="某某县民政局"))
    assert code == 1 and "not what the SMS template renders" in errors[0]["message"]


def test_a_variable_over_the_limit_is_refused(capsys: pytest.CaptureFixture[str], folder: Path) -> None:
    code, errors = check(capsys, folder, block(), config="\n[providers.aliyun]\nmax_variable_length = 3\n")
    assert code == 1
    lines = {e["line"]: e["message"] for e in errors}
    at = line_of(folder, "      amount:")  # ¥1,234.50 for the sample resident; 张三 fits
    assert "at most 3" in lines[at] and "sms_templates.aliyun.params.amount" in lines[at]
    assert line_of(folder, "      name:") not in lines


def test_a_url_in_a_variable_is_refused(capsys: pytest.CaptureFixture[str], folder: Path) -> None:
    text = TEXT.replace("https://example.gov.cn/zwgk/dibao", "${url}")
    code, errors = check(capsys, folder, block(text, PARAMS | {"url": "{{ item.url }}"}))
    assert code == 1
    [e] = errors
    assert "URL" in e["message"] and e["line"] == line_of(folder, "      url:")


def test_a_message_over_500_characters_is_refused(capsys: pytest.CaptureFixture[str], folder: Path) -> None:
    long = "补" * 480
    sms = folder / "templates" / "dibao_payment.sms.j2"
    sms.write_text(sms.read_text(encoding="utf-8").replace("回TD退订", long + "回TD退订"), encoding="utf-8")
    code, errors = check(capsys, folder, block(TEXT.replace("回TD退订", long + "回TD退订")))
    assert code == 1 and any("at most 500" in e["message"] for e in errors)


@pytest.mark.parametrize(
    ("sms", "needle", "message"),
    [
        (
            block(params={k: v for k, v in PARAMS.items() if k != "year"}),
            "    params:",
            "'year' has no value",
        ),
        (block(params=PARAMS | {"extra": "x"}), "      extra:", "not a variable of the registered text"),
        (block(params=PARAMS | {"name": "{{ resident.name"}), "      name:", "template syntax error"),
        (block(params=PARAMS | {"name": "{{ resident.nope }}"}), "      name:", "nope"),
        (block().replace("  aliyun:", "  alyun:"), "  alyun:", 'did you mean "aliyun"'),
        (block().replace("    code: SMS_4870001", '    code: ""'), "    code:", "non-empty string"),
        (block(extra="    signature: x\n"), "    signature:", "unknown key 'signature'"),
    ],
)
def test_mistakes_are_located(
    capsys: pytest.CaptureFixture[str], folder: Path, sms: str, needle: str, message: str
) -> None:
    code, errors = check(capsys, folder, sms)
    assert code == 1
    assert any(e["line"] == line_of(folder, needle) and message in e["message"] for e in errors), errors


def test_params_render_whitespace_like_the_sms_template() -> None:
    from notifier.rules.smstemplates import RegisteredTemplate

    t = RegisteredTemplate("aliyun", "SMS_1", "县", "${a}", (("a", "{{ x }}  \n 甲"),), (1, 1))
    [(kind, call)] = TemplateParams("r.yaml", {"aliyun": t}).render({"x": "乙"}).items()
    assert call.params == (("a", "乙 甲"),)


def test_a_rule_sending_sms_through_aliyun_needs_its_template(
    capsys: pytest.CaptureFixture[str], folder: Path
) -> None:
    config = '\n[channels.sms]\nproviders = ["aliyun", "outbox"]\n[providers.aliyun]\naccess_key_id = "x"\n'
    code, errors = check(capsys, folder, "", config=config)
    assert code == 1
    [e] = errors
    assert "add sms_templates.aliyun" in e["message"] and e["file"].endswith(RULE)


def _docs_block(marker: str, fence: str) -> str:
    """The fenced block of docs/providers.md that follows `marker`."""
    docs = (Path(__file__).resolve().parents[2] / "docs" / "providers.md").read_text(encoding="utf-8")
    after = docs[docs.index(marker) :]
    start = after.index(f"```{fence}\n") + len(fence) + 4
    return after[start : after.index("```", start)]


def test_the_tencent_rule_example_in_the_docs_is_what_rules_check_proves(
    capsys: pytest.CaptureFixture[str], folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = _docs_block("<!-- tencent-rule-example", "yaml")
    block = example[example.index("sms_templates:") :]
    rule = folder / "rules" / "farm-subsidy-2026.yaml"
    assert "templates: {sms: farm_subsidy.sms.j2" in rule.read_text(encoding="utf-8")  # the docs' rule
    rule.write_text(rule.read_text(encoding="utf-8") + block, encoding="utf-8")
    cfg = folder / "notifier.toml"
    cfg.write_text(cfg.read_text(encoding="utf-8") + _docs_block("### Configuration\n\n", "toml"))
    code = main(["--config", str(cfg), "rules", "check", str(rule), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert (code, out["errors"]) == (0, [])
    for name in ("TENCENT_SMS_SECRET_ID", "TENCENT_SMS_SECRET_KEY", "TENCENT_SMS_CALLBACK_TOKEN"):
        monkeypatch.setenv(name, "x" * 24)
    provider = build_provider(load_config(cfg), "tencent")  # the docs' config is a working one
    assert provider.describe() == "tencent (https://sms.tencentcloudapi.com, SmsSdkAppId 1400000001)"
    assert provider.options.per_number_seconds == 30 and provider.options.callback_token == "x" * 24
    rule.write_text(rule.read_text(encoding="utf-8").replace("预计{4}", "预计{4}元"), encoding="utf-8")
    assert main(["--config", str(cfg), "rules", "check", str(rule), "--json"]) == 1
