"""Every YAML and template example in docs/guide/ is checked, so the guide cannot drift from
the rule language: ```yaml rule blocks pass `rules check`, ```yaml condition blocks pass inside a
minimal rule, ```yaml error NAME blocks fail with exactly the errors of the ```text block after
them; ```yaml fields is the dictionary they use and ```jinja NAME blocks are their templates."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from notifier.cli import main
from tests.support.project import REPO, write_config

GUIDE = REPO / "docs" / "guide"
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```\s*$", re.M | re.S)
SKELETON = """\
id: {id}
item: {{title: 示例事项, domain: elderly_care, department: 县民政局, url: https://example.gov.cn/zwgk,
       publish: {{from: 2025-01-01, until: 2027-12-31}}}}
parameters:
  low_income_line: {{unit: 元/人·年, reference: 某县民发〔2025〕3号, values: {{2025-01-01: 7440}}}}
match:
{body}
channels: [sms]
templates: {{sms: guide_notice.sms.j2}}
"""


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    info: tuple[str, ...]
    text: str
    following: str | None  # the ```text block right after it, if any

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def blocks() -> list[Block]:
    out: list[Block] = []
    for page in sorted(GUIDE.glob("*.md")):
        text = page.read_text(encoding="utf-8")
        found = list(FENCE.finditer(text))
        for i, m in enumerate(found):
            nxt = found[i + 1] if i + 1 < len(found) else None
            between = text[m.end() : nxt.start()] if nxt else ""
            following = (
                nxt.group(2) if nxt and nxt.group(1).strip() == "text" and not between.strip() else None
            )
            out.append(
                Block(
                    page.name,
                    text.count("\n", 0, m.start()) + 1,
                    tuple(m.group(1).split()),
                    m.group(2),
                    following,
                )
            )
    return out


ALL = blocks()


def of(kind: str, sub: str | None = None) -> list[Block]:
    return [b for b in ALL if b.info[:1] == (kind,) and (sub is None or b.info[1:2] == (sub,))]


@pytest.fixture(scope="module")
def guide_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose fields.yaml and templates are the guide's, with no rules of its own."""
    folder = tmp_path_factory.mktemp("guide")
    write_config(folder, f"sqlite:///{folder / 'notifier.db'}")
    shutil.rmtree(folder / "rules")
    (folder / "rules").mkdir()
    (fields,) = of("yaml", "fields")
    (folder / "rules" / "fields.yaml").write_text(fields.text, encoding="utf-8")
    for b in of("jinja"):
        (folder / "templates" / b.info[1]).write_text(b.text.rstrip("\n"), encoding="utf-8")
    return folder


def check(capsys: pytest.CaptureFixture[str], folder: Path, name: str, text: str) -> dict[str, Any]:
    rule = folder / "rules" / name
    rule.write_text(text, encoding="utf-8")
    try:
        code = main(["--config", str(folder / "notifier.toml"), "rules", "check", str(rule), "--json"])
        out = json.loads(capsys.readouterr().out)
    finally:
        rule.unlink()
    out["code"] = code
    return out


def errors_of(out: dict[str, Any]) -> list[str]:
    return [f"{Path(e['file']).name}:{e['line']}:{e['column']}: {e['message']}" for e in out["errors"]]


def test_the_guide_has_examples_of_every_kind() -> None:
    """Guards the extraction itself: a renamed fence tag would otherwise check nothing."""
    assert len(of("yaml", "fields")) == 1
    assert len(of("yaml", "rule")) >= 3 and len(of("yaml", "condition")) >= 15
    assert len(of("yaml", "error")) >= 5 and len(of("jinja")) >= 3
    untagged = [b.where for b in ALL if b.info[:1] in (("yaml",), ("jinja",), ("yml",)) and len(b.info) < 2]
    assert untagged == [], (
        "every YAML/template example says what it is (rule, condition, error, fields, NAME)"
    )
    assert all(b.following is not None for b in of("yaml", "error")), "each error example shows its error"


@pytest.mark.parametrize("block", of("yaml", "rule"), ids=lambda b: b.where)
def test_each_rule_example_passes_rules_check(
    capsys: pytest.CaptureFixture[str], guide_project: Path, block: Block
) -> None:
    rule_id = re.search(r"^id: (\S+)", block.text, re.M)
    assert rule_id, f"{block.where}: a rule example needs an id"
    out = check(capsys, guide_project, f"{rule_id.group(1)}.yaml", block.text)
    assert out["errors"] == [] and out["code"] == 0, f"{block.where}: {errors_of(out)}"
    assert out["tests"]["failed"] == 0


@pytest.mark.parametrize("block", of("yaml", "condition"), ids=lambda b: b.where)
def test_each_condition_example_passes_rules_check(
    capsys: pytest.CaptureFixture[str], guide_project: Path, block: Block
) -> None:
    body = "\n".join("  " + line for line in block.text.rstrip("\n").splitlines())
    out = check(capsys, guide_project, "condition.yaml", SKELETON.format(id="guide-condition", body=body))
    assert out["errors"] == [] and out["code"] == 0, f"{block.where}: {errors_of(out)}"


@pytest.mark.parametrize("block", of("yaml", "error"), ids=lambda b: b.where)
def test_each_error_example_fails_with_the_error_the_guide_shows(
    capsys: pytest.CaptureFixture[str], guide_project: Path, block: Block
) -> None:
    assert len(block.info) == 3, f"{block.where}: write ```yaml error FILE.yaml"
    out = check(capsys, guide_project, block.info[2], block.text)
    assert out["code"] == 1
    assert block.following is not None
    shown = [line.strip() for line in block.following.splitlines() if line.strip()]
    assert errors_of(out) == shown, block.where
