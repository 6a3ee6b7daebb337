"""Model descriptions with tonight's thresholds, for the Dagster UI.

A cohort's YAML description states its rule with `{{ var("...") }}`, so `dbt docs` shows the
values too. dbt renders it once, when it parses, with the project's defaults; an installation
that overrides a var (NIGHTJAR_DBT_VARS) would then show a rule it does not apply. So the
Dagster UI renders the YAML's own text again here, with the values the nightly build passes.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import yaml

from pipelines.dbt_setup import DBT_PROJECT_DIR


def effective_vars(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """dbt_project.yml's vars with this installation's overrides (settings.dbt_vars)."""
    project = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())
    return {**(project.get("vars") or {}), **overrides}


@cache
def current_vars() -> dict[str, Any]:
    """The vars tonight's build applies, read once per process (as Dagster loads its code)."""
    from pipelines.settings import load_settings

    return effective_vars(load_settings().dbt_vars)


@cache
def _raw_descriptions(patch_path: str) -> dict[str, str]:
    """The descriptions of one properties file, as written (before dbt rendered them)."""
    path = DBT_PROJECT_DIR / Path(patch_path.split("://", 1)[-1])
    document = yaml.safe_load(path.read_text()) or {}
    return {m["name"]: m.get("description") or "" for m in document.get("models") or ()}


def describe_model(node: Mapping[str, Any], dbt_vars: Mapping[str, Any]) -> str:
    """The model's description rendered with `dbt_vars`; dbt's own rendering when the
    properties file cannot be read (a manifest from elsewhere)."""
    patch_path = node.get("patch_path")
    try:
        raw = _raw_descriptions(patch_path)[node["name"]] if patch_path else None
    except (OSError, KeyError, yaml.YAMLError):
        raw = None
    if not raw or "{{" not in raw:
        return " ".join(str(node.get("description") or "").split())

    def var(name: str, default: Any = None) -> Any:
        return dbt_vars.get(name, default)

    try:
        text = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(raw)
        rendered = text.render(var=var)
    except jinja2.TemplateError:
        rendered = str(node.get("description") or "")
    return " ".join(rendered.split())
