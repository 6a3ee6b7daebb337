"""The Settings class (models/settings.py) is the one description of Nightjar's settings:
README's "Settings" table and .env.example say what it says, no setting more or less."""

from __future__ import annotations

import re
import typing
from pathlib import Path

from pydantic.fields import FieldInfo

from models.settings import SETTING_NAMES, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
# `NAME=value`, or `# NAME=value`: an example for a setting without a default.
ENTRY = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")
FIELDS = {str(field.validation_alias): field for field in Settings.model_fields.values()}


def env_text(field: FieldInfo) -> str:
    """A default as a `.env` writes it: `24` for 24.0, `false`, nothing for none."""
    value = field.get_default(call_default_factory=True)
    if value is None or value == {}:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def table_row(name: str) -> str:
    """The README row of a setting, all of it from the class."""
    field = FIELDS[name]
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    text = env_text(field)
    default = extra.get("when_unset") or (f"`{text}`" if text else "unset")
    return f"| `{name}` | {default} | {field.description} |"


def test_the_readme_table_is_the_classs_settings_in_its_order():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    expected = [table_row(name) for name in SETTING_NAMES]
    wrong = [row for row in rows if row not in expected]
    missing = [row for row in expected if row not in rows]
    assert not wrong and not missing, "\n".join(
        [
            "README's Settings table is not the class's (models/settings.py). Not so in it:",
            *wrong,
            "Missing or described otherwise:",
            *missing,
            "The whole table:",
            *expected,
        ]
    )
    assert rows == expected, "the table's order is the class's:\n" + "\n".join(expected)


def test_env_example_names_each_setting_once_with_its_default():
    entries = [
        ENTRY.match(line)
        for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
    ]
    named = [(m.group(2), bool(m.group(1)), m.group(3)) for m in entries if m]
    names = [name for name, _, _ in named]
    assert sorted(names) == sorted(SETTING_NAMES), (
        f"not settings: {sorted(set(names) - set(SETTING_NAMES))}; "
        f"missing: {[n for n in SETTING_NAMES if n not in names]}; "
        f"twice: {sorted({n for n in names if names.count(n) > 1})}"
    )
    for name, commented, value in named:
        default = env_text(FIELDS[name])
        if commented:  # an example value, only for a setting that has no default
            assert default == "", f".env.example: {name} has the default {default!r}"
        else:
            assert value == default, f".env.example: {name}={value!r}, the default is {default!r}"


def test_each_choice_of_a_setting_is_in_its_description():
    for name, field in FIELDS.items():
        if typing.get_origin(field.annotation) is typing.Literal:
            for choice in typing.get_args(field.annotation):
                assert f"`{choice}`" in (field.description or ""), (name, choice)


def test_env_example_copied_to_dotenv_changes_nothing(workspace, monkeypatch, tmp_path):
    def unset_all() -> None:
        for name in SETTING_NAMES:
            monkeypatch.setenv(name, "x")  # so that the test's end restores each name
            monkeypatch.delenv(name)

    monkeypatch.chdir(tmp_path)
    unset_all()
    defaults = load_settings()
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text(encoding="utf-8"))
    unset_all()
    assert load_settings() == defaults
