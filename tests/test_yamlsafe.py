from datetime import date
from decimal import Decimal

import pytest

from notifier.errors import InputError
from notifier.yamlsafe import load_yaml


def test_values_and_positions() -> None:
    doc = load_yaml("on: 2026-03-02\nn: 12\nx: 0.1\nb: no\nt: true\nq: '5'\nlist:\n  - a\n  - 3.50\n", "f.yaml")
    assert doc == {"on": date(2026, 3, 2), "n": 12, "x": Decimal("0.1"), "b": "no", "t": True, "q": "5",
                   "list": ["a", Decimal("3.50")]}
    assert doc.where("n") == (2, 4)
    assert doc["list"].where(1) == (9, 5)


@pytest.mark.parametrize("text, line, message", [
    ("a: 1\nb: !!python/object:os.system x\n", 2, "tags are not allowed"),
    ("a: 1\nb: 2\na: 3\n", 3, "duplicate key 'a' (first given on line 1)"),
    ("a: &x 1\nb: *x\n", 1, "anchors and aliases"),
    ("a: [1, 2\n", 2, "invalid YAML"),
    ("d: 2026-02-30\n", 1, "not a valid date"),
])
def test_refusals_are_located(text: str, line: int, message: str) -> None:
    with pytest.raises(InputError) as err:
        load_yaml(text, "rule.yaml")
    p = err.value.problems[0]
    assert p.file == "rule.yaml" and p.line == line and message in p.message
