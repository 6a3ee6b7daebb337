"""The dbt project on disk: its folder, its manifest (parsed when stale) and the campaigns
its YAML declares. No Dagster here: the CLI reads the manifest without loading it."""

import fcntl
import json
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

from models.programs import campaigns_from_manifest
from models.settings import DBT_PROJECT_DIR

_SOURCES = ("models", "macros", "tests", "dbt_project.yml")


def dbt_executable() -> str:
    """dbt from this interpreter's environment, so an unactivated virtualenv works too."""
    # sys.prefix is the virtualenv even where sys.executable is its resolved base interpreter
    # (as in the code server `dagster dev` starts).
    for folder in (Path(sys.prefix) / "bin", Path(sys.executable).parent):
        if (folder / "dbt").exists():
            return str(folder / "dbt")
    return shutil.which("dbt") or "dbt"


def _newest_source_mtime() -> float:
    newest = 0.0
    for name in _SOURCES:
        path = DBT_PROJECT_DIR / name
        files = [path] if path.is_file() else path.rglob("*")
        newest = max([newest, *(f.stat().st_mtime for f in files if f.is_file())])
    return newest


def ensure_manifest() -> Path:
    """Run `dbt parse` when the manifest is missing or older than the SQL and YAML.

    The campaigns are the cohorts' YAML blocks, and send_decisions reads every campaign's
    cohort: dbt only knows those dependencies when it parses with the var `campaigns`. The
    campaigns of the manifest being replaced are passed to the parse, so one parse suffices
    unless the edit changed the campaigns themselves; then a second one records them."""
    manifest = DBT_PROJECT_DIR / "target" / "manifest.json"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    # One parse at a time: two processes finding it stale at once (pytest's workers, a
    # night and the UI) wrote one file together, two manifests run into one.
    with (manifest.parent / ".manifest.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _parse_if_stale(manifest)


def _parse_if_stale(manifest: Path) -> Path:
    fresh = manifest.exists() and manifest.stat().st_mtime >= _newest_source_mtime()
    # A `dbt build` by hand rewrites the manifest without the var `campaigns`: fresh, but
    # with the send decisions no longer depending on the cohorts.
    if fresh and _knows_the_campaigns(load_manifest()):
        return manifest
    known = _campaigns_of_the_last_parse(manifest)
    _dbt_parse({"campaigns": known} if known else {})
    found = campaigns_var(load_manifest())
    if found != known:
        _dbt_parse({"campaigns": found})
    return manifest


def _campaigns_of_the_last_parse(manifest: Path) -> list[dict[str, Any]]:
    try:
        return campaigns_var(load_manifest()) if manifest.exists() else []
    except (ValueError, KeyError):  # a campaign block broken then: the parse finds them anew
        return []


def _knows_the_campaigns(manifest: dict[str, Any]) -> bool:
    """The cohorts are read by int_campaign_members_unioned only when parsed with them."""
    nodes = manifest.get("nodes", {}).values()
    union = [n for n in nodes if n.get("name") == "int_campaign_members_unioned"]
    if not union:
        return True
    read = {dep.rsplit(".", 1)[-1] for dep in union[0]["depends_on"]["nodes"]}
    return all(campaign["cohort"] in read for campaign in campaigns_var(manifest))


def campaigns_var(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The dbt var `campaigns`: every campaign's block as send_decisions needs it."""
    return [campaign.as_dbt_var() for campaign in campaigns_from_manifest(manifest)]


def _dbt_parse(variables: dict[str, Any]) -> None:
    command = [dbt_executable(), "parse", "--profiles-dir", str(DBT_PROJECT_DIR), "--quiet"]
    if variables:
        command += ["--vars", json.dumps(variables)]
    completed = subprocess.run(
        command, cwd=DBT_PROJECT_DIR, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"dbt parse failed in {DBT_PROJECT_DIR}:\n{completed.stdout}{completed.stderr}"
        )


def load_manifest() -> dict[str, Any]:
    """The parsed manifest (about 1 MB), read from disk once per process and again only
    when a parse has replaced the file. Shared: callers must not change it."""
    path = DBT_PROJECT_DIR / "target" / "manifest.json"
    stat = path.stat()
    return _read_manifest(path, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=1)
def _read_manifest(path: Path, mtime_ns: int, size: int) -> dict[str, Any]:
    return json.loads(path.read_text())
