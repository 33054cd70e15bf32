"""Template names in rule files stay inside the templates folder: `..`, absolute paths and
symbolic links that lead out of it are refused by `rules check` with file:line:column."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from notifier.cli import main
from tests.support.project import write_config

RULE = "farm-subsidy-2026.yaml"
LINE, COLUMN = 20, 18  # templates: {sms: farm_subsidy.sms.j2, ...}: where the sms value starts


def check_with_sms_template(
    capsys: pytest.CaptureFixture[str], folder: Path, name: str
) -> tuple[int, list[dict[str, Any]], str]:
    rule = folder / "rules" / RULE
    text = rule.read_text(encoding="utf-8")
    assert text.splitlines()[LINE - 1].startswith("templates: {sms: farm_subsidy.sms.j2,")
    rule.write_text(
        text.replace("{sms: farm_subsidy.sms.j2,", "{sms: " + json.dumps(name) + ",", 1), encoding="utf-8"
    )
    code = main(["--config", str(folder / "notifier.toml"), "rules", "check", str(rule), "--json"])
    out, err = capsys.readouterr()
    return code, json.loads(out)["errors"], err


@pytest.fixture
def folder(tmp_path: Path, sqlite_url: str) -> Path:
    write_config(tmp_path / "p", sqlite_url)
    (tmp_path / "secret.j2").write_text(
        "{{ resident.id_number }} outside the templates folder\n", encoding="utf-8"
    )
    return tmp_path / "p"


@pytest.mark.parametrize(
    "name, why",
    [
        ("../../secret.j2", "goes up with '..'"),
        ("farm_subsidy.sms.j2/../../../secret.j2", "goes up with '..'"),
        ("..", "goes up with '..'"),
        ("{root}/secret.j2", "is an absolute path"),
        ("/etc/passwd", "is an absolute path"),
        ("C:\\\\Windows\\\\win.ini", "is not a plain file name"),
        ("link.sms.j2", "leads out of the templates folder through a symbolic link"),
        ("linked_dir/secret.j2", "leads out of the templates folder through a symbolic link"),
    ],
)
def test_template_names_leaving_the_folder_are_refused(
    capsys: pytest.CaptureFixture[str], folder: Path, name: str, why: str
) -> None:
    (folder / "templates" / "link.sms.j2").symlink_to(folder.parent / "secret.j2")
    (folder / "templates" / "linked_dir").symlink_to(folder.parent, target_is_directory=True)
    name = name.replace("{root}", str(folder.parent))
    code, errors, err = check_with_sms_template(capsys, folder, name)
    assert code == 1 and "Traceback" not in err
    [e] = errors
    assert (e["file"], e["line"], e["column"]) == (str(folder / "rules" / RULE), LINE, COLUMN)
    assert e["message"].startswith(f"template {name!r} {why}") and "may only use files inside" in e["message"]
    assert "outside the templates folder\n" not in err and "id_number" not in json.dumps(errors)


def test_a_symlink_inside_the_folder_and_a_subfolder_are_accepted(
    capsys: pytest.CaptureFixture[str], folder: Path
) -> None:
    templates = folder / "templates"
    (templates / "sms").mkdir()
    (templates / "sms" / "farm.j2").write_text(
        (templates / "farm_subsidy.sms.j2").read_text(encoding="utf-8"), encoding="utf-8"
    )
    (templates / "alias.sms.j2").symlink_to(templates / "sms" / "farm.j2")
    for name in ("sms/farm.j2", "alias.sms.j2", "./sms/farm.j2"):
        code, errors, _ = check_with_sms_template(capsys, folder, name)
        assert (code, errors) == (0, []), name
        (folder / "rules" / RULE).write_text(
            (folder / "rules" / RULE)
            .read_text(encoding="utf-8")
            .replace(json.dumps(name), "farm_subsidy.sms.j2"),
            encoding="utf-8",
        )
