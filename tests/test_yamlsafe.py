import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from notifier.cli import main
from notifier.errors import InputError
from notifier.yamlsafe import load_yaml
from tests.support.project import write_config


def test_values_and_positions() -> None:
    doc = load_yaml(
        "on: 2026-03-02\nn: 12\nx: 0.1\nb: no\nt: true\nq: '5'\nlist:\n  - a\n  - 3.50\n", "f.yaml"
    )
    assert doc == {
        "on": date(2026, 3, 2),
        "n": 12,
        "x": Decimal("0.1"),
        "b": "no",
        "t": True,
        "q": "5",
        "list": ["a", Decimal("3.50")],
    }
    assert doc.where("n") == (2, 4)
    assert doc["list"].where(1) == (9, 5)


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("a: 1\nb: !!python/object:os.system x\n", 2, "tags are not allowed"),
        ("a: 1\nb: 2\na: 3\n", 3, "duplicate key 'a' (first given on line 1)"),
        ("a: &x 1\nb: *x\n", 1, "anchors and aliases"),
        ("a: [1, 2\n", 2, "invalid YAML"),
        ("d: 2026-02-30\n", 1, "not a valid date"),
    ],
)
def test_refusals_are_located(text: str, line: int, message: str) -> None:
    with pytest.raises(InputError) as err:
        load_yaml(text, "rule.yaml")
    p = err.value.problems[0]
    assert p.file == "rule.yaml" and p.line == line and message in p.message


# -- bounded input: huge numbers and deep nesting are located refusals, never a traceback ---------
@pytest.mark.parametrize(
    "text, line, column, message",
    [
        ("a: 1\nn: " + "9" * 100_000 + "\n", 2, 4, "at most 40 digits"),
        ("x: 1." + "5" * 5000 + "\n", 1, 4, "at most 40 digits"),
        ("x: 1.0e999999999\n", 1, 4, "exponent must be between -40 and 40"),
        ("x: 1e999999999\n", 1, 4, "exponent must be between -40 and 40"),
        ("x: [1, 2.5E-" + "9" * 50_000 + "]\n", 1, 8, "exponent"),
        ("x: " + "[" * 100 + "]" * 100 + "\n", 1, 103, "nested deeper than 100 levels"),
        ("x: " + "[" * 200_000 + "\n", 1, 103, "nested deeper than 100 levels"),
        (
            "".join(f"{'  ' * i}k{i}:\n" for i in range(150)) + "  " * 150 + "v\n",
            101,
            201,
            "nested deeper than 100",
        ),
    ],
)
def test_unbounded_input_is_refused_with_a_location(text: str, line: int, column: int, message: str) -> None:
    with pytest.raises(InputError) as err:
        load_yaml(text, "fields.yaml")
    p = err.value.problems[0]
    assert (p.file, p.line, p.column) == ("fields.yaml", line, column) and message in p.message, p


def test_numbers_and_nesting_within_the_bounds_are_read() -> None:
    """100 levels in all: the document's own mapping and 99 lists inside it."""
    doc = load_yaml(
        "a: " + "9" * 40 + "\nb: 1.5e40\nc: " + "[" * 99 + "]" * 99 + "\nd: '" + "9" * 100 + "'\n", "f.yaml"
    )
    assert doc["a"] == int("9" * 40) and doc["b"] == Decimal("1.5e40") and doc["d"] == "9" * 100


def _rules_check(capsys: pytest.CaptureFixture[str], cfg: Path) -> tuple[int, dict[str, Any], str]:
    code = main(["--config", str(cfg), "rules", "check", "--json"])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def test_rules_check_refuses_a_huge_number_in_a_rule_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, sqlite_url: str
) -> None:
    cfg = write_config(tmp_path, sqlite_url)
    rule = tmp_path / "rules" / "farm-subsidy-2026.yaml"
    rule.write_text(
        rule.read_text(encoding="utf-8")
        .replace("farmland_mu: 6.5", "farmland_mu: 6.5e999999999")
        .replace("greater_than: 0", "greater_than: " + "9" * 50_000),
        encoding="utf-8",
    )
    code, out, err = _rules_check(capsys, cfg)
    assert code == 1 and not out["ok"] and "Traceback" not in err
    found = {(e["line"], e["message"].split(",")[0]) for e in out["errors"] if e["file"] == str(rule)}
    assert found == {
        (18, "a number may have at most 40 digits"),
        (25, "a number's exponent must be between -40 and 40 (quote it if it is text)"),
    }


def test_rules_check_refuses_deep_nesting_in_fields_yaml(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, sqlite_url: str
) -> None:
    cfg = write_config(tmp_path, sqlite_url)
    fields = tmp_path / "rules" / "fields.yaml"
    fields.write_text(
        fields.read_text(encoding="utf-8") + "extra: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n",
        encoding="utf-8",
    )
    line = fields.read_text(encoding="utf-8").count("\n")
    code, out, err = _rules_check(capsys, cfg)
    assert code == 1 and "Traceback" not in err
    assert {
        "file": str(fields),
        "line": line,
        "column": 8 + 4 * 99,
        "message": "nested deeper than 100 levels",
    } in out["errors"]
