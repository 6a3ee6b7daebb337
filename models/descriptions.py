"""Model descriptions with tonight's thresholds, for the Dagster UI, and the record of the
vars a night ran with.

A model's YAML description states its rule with `{{ var("...") }}`, so `dbt docs` shows the
values too. dbt renders it once, when it parses, with the project's defaults; an installation
that overrides a var (NIGHTJAR_DBT_VARS) would then show a rule it does not apply. So the
Dagster UI renders the YAML's own text again here, with the vars the nightly build passes:
both come from models.settings.effective_dbt_vars, read afresh each time.

The UI's code location may still run in another environment than a night (`dagster dev`
started in one shell, `nightjar run` in another): each night's materializations therefore
record the vars they ran with (metadata `vars`, see vars_record), the truth per date.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import yaml

from models.campaigns import Campaign
from models.manifest import campaigns_var, load_manifest
from models.programs import campaigns_from_manifest
from models.settings import DBT_PROJECT_DIR, effective_dbt_vars, load_settings, project_vars

# Not in a night's record of its vars: the campaigns are the send assets' own definitions,
# and when the decisions were made is send_decisions' `decided_at`.
_NOT_RECORDED = ("campaigns", "send_after")


def effective_vars(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """dbt_project.yml's vars with this installation's overrides (settings.dbt_vars)."""
    return {**project_vars(), **overrides}


def current_vars() -> dict[str, Any]:
    """The vars a night run in this environment now applies, with the campaigns (whose
    priorities send_decisions states). Never cached: the Definitions describe what a run
    started with the same environment would apply, not what applied when they first loaded."""
    return {**effective_dbt_vars(load_settings()), "campaigns": campaigns_var(load_manifest())}


# Callers written when current_vars was cached clear it
# (tests/integration/test_definitions.py); there is nothing left to clear.
current_vars.cache_clear = lambda: None  # type: ignore[attr-defined]


def vars_record(dbt_vars: Mapping[str, Any]) -> dict[str, Any]:
    """What a night's materializations record of the vars it ran with (metadata `vars`):
    every var of the project, as_of_date included, with its value that night."""
    recorded = [name for name in sorted(project_vars()) if name not in _NOT_RECORDED]
    return {name: dbt_vars.get(name) for name in recorded}


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


def described_campaigns(manifest: Mapping[str, Any], dbt_vars: Mapping[str, Any]) -> list[Campaign]:
    """Every campaign, each cohort's description rendered with `dbt_vars`."""
    return campaigns_from_manifest(manifest, lambda node: describe_model(node, dbt_vars))
