"""dbt run in this process, from a parse reused night after night.

Started as a process of its own, dbt costs a night about 9 s before its first model on an
empty day: its interpreter and imports, and a full parse, because the vars change every night
(the business date, the incremental window, the send time) and any change of vars makes dbt
discard its partial parse. Here dbt runs in the night's own process (dbtRunner) on a parse
kept from an earlier night:

- The parse is made with a placeholder for each var that changes every night (`NIGHTLY`):
  those vars reach only SQL, which dbt compiles at run time with the night's real values, so
  the literals DuckDB prunes row groups with stay literals. A placeholder that reached a
  config at parse time (a Python model's `config: as_of_date: "{{ var('as_of_date') }}"`) is
  replaced by the night's value before the run.
- The parse is kept, pickled, under target/nightly_parse, keyed by what shaped it (`_key`):
  the content of every file of the project dbt reads, the versions of dbt and its adapters,
  the target, the database name dbt-duckdb takes from the warehouse file's name, and every
  other var (the settings and campaigns, which do shape configs and the graph). A key not
  seen before costs one parse, as every night did before.

No Dagster here: assets/warehouse/dbt_models.py turns a BuildResult into Dagster's events.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.metadata
import json
import os
import pickle
import re
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.settings import DBT_PROJECT_DIR

# The vars whose value changes every night (assets/warehouse/dbt_models.dbt_build_args).
NIGHTLY = ("as_of_date", "incremental_since", "send_after")
PARSES = DBT_PROJECT_DIR / "target" / "nightly_parse"
KEPT_PARSES = 16  # a parse per warehouse file name and settings; the oldest go
ABANDONED_AFTER_S = 24 * 3600  # a parse's draft this old was left by a killed process
_PLACEHOLDER = "@@nightjar-var:{}@@"
# No usage statistics sent to dbt Labs from a night (dagster-dbt turned them off for its
# subprocess too); a firewalled machine would also wait on them.
_WHERE = ["--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)]
_WHERE += ["--no-send-anonymous-usage-stats"]
# One dbt at a time in a process: dbt keeps its flags and adapters in module globals.
_ONE_AT_A_TIME = threading.Lock()
# This process's parses (about 1 MB each), unpickled afresh for each night; the latest few.
_pickled: OrderedDict[str, bytes] = OrderedDict()


@dataclass
class BuildResult:
    """What dbt did: each node's unique_id and status ("success", "pass", "fail", "error",
    "warn", "skipped"), its name, resource type, seconds and message when it did not pass;
    `failure`, the build's error in one line, or None."""

    statuses: dict[str, str] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)  # a test's failing rows
    invocation_id: str | None = None
    failure: str | None = None


def invoke(
    args: Sequence[str], target_path: Path, result: BuildResult, target: str | None = None
) -> None:
    """`dbt <args>` (with `--vars`) in this process on profiles.yml's `target` (its default
    when None), its artifacts and dbt.log in `target_path`; what it did is added to `result`.
    The warehouse file is closed again when it returns (DuckDB lets one process write)."""
    from dbt.cli.main import dbtRunner

    variables = json.loads(args[list(args).index("--vars") + 1])
    how = ["--target-path", str(target_path), "--log-path", str(target_path)]
    how += ["--log-level", "none", "--log-level-file", "debug", "--no-use-colors"]
    how += ["--target", target] if target else []
    with _ONE_AT_A_TIME:
        manifest = parsed(variables, target)
        try:
            ran = dbtRunner(manifest=manifest).invoke([*args, *_WHERE, *how])
        finally:
            _release_warehouse()
    _collect(ran, result)


def _collect(ran, result: BuildResult) -> None:
    _pass_on_interrupts(ran)
    for node in ran.result or []:
        unique_id = node.node.unique_id
        status = str(getattr(node.status, "value", node.status))
        result.statuses[unique_id] = status
        result.names[unique_id] = node.node.name
        result.kinds[unique_id] = str(getattr(node.node.resource_type, "value", ""))
        result.seconds[unique_id] = float(node.execution_time or 0)
        if node.failures is not None:
            result.failures[unique_id] = int(node.failures)
        if node.message and status not in ("success", "pass"):
            result.messages[unique_id] = str(node.message)
    from dbt_common.invocation import get_invocation_id

    result.invocation_id = get_invocation_id()
    if not ran.success and result.failure is None:
        result.failure = _failure(result, ran.exception)


def _pass_on_interrupts(ran) -> None:
    """dbtRunner returns whatever stopped it; Ctrl-C, or Dagster terminating the run, must
    stop the night as it would have without dbt, not read as a failed build."""
    if isinstance(ran.exception, KeyboardInterrupt | SystemExit):
        raise ran.exception


_ERROR_KIND = re.compile(r"^(?:Runtime|Database|Compilation|Parsing|Dependency) Error in ")


def _failure(result: BuildResult, exception: BaseException | None) -> str:
    """The first node that failed and the database's reason, in one line: `dbt build failed
    in model send_decisions: Binder Error: ...`; dbt's error when none ran."""
    failed = [uid for uid, status in result.statuses.items() if status in ("error", "fail")]
    if not failed:
        return f"dbt build failed: {_first_line(str(exception or 'see dbt.log'))}"
    first = failed[0]
    what = f"dbt build failed in {result.kinds.get(first) or 'node'} {result.names[first]}"
    if len(failed) > 1:
        what += f" (and {len(failed) - 1} more)"
    reason = _first_line(result.messages.get(first, ""))
    return f"{what}: {reason}" if reason else what


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reasons = [line for line in lines if not _ERROR_KIND.match(line)]
    return (reasons or lines or [""])[0]


def _release_warehouse() -> None:
    """dbt-duckdb keeps its database open in a class attribute after a run, with settings of
    its own; DuckDB refuses a second connection to the file with other settings, and the
    night's publishing, the sends and the next night open it next."""
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # pragma: no cover - dbt-duckdb is a dependency
        return
    with DuckDBConnectionManager._LOCK:
        environment = DuckDBConnectionManager._ENV
        DuckDBConnectionManager._ENV = None
        if environment is not None:
            with contextlib.suppress(Exception):
                environment.close()


# ---- the parse, kept ----------------------------------------------------------------------


def parsed(variables: Mapping[str, Any], target: str | None):
    """The project parsed for `variables`, the nightly ones placeholders replaced by their
    values tonight: from this process's memory, else target/nightly_parse, else parsed now."""
    parse_vars = {**variables, **{name: _PLACEHOLDER.format(name) for name in NIGHTLY}}
    key = _key(parse_vars, target)
    manifest = None
    if key not in _pickled and (kept := _read(key)):
        with contextlib.suppress(Exception):  # another dbt's, or cut short: parsed again
            manifest = _loads(kept)
            _pickled[key] = kept
    if key not in _pickled:
        _pickled[key] = _parse(parse_vars, target, key)
    _pickled.move_to_end(key)
    while len(_pickled) > 4:
        _pickled.popitem(last=False)
    if manifest is None:
        manifest = _loads(_pickled[key])  # a copy: a run writes its compiled SQL into it
    _fill_placeholders(manifest, {name: variables.get(name) for name in NIGHTLY})
    return manifest


def _key(parse_vars: Mapping[str, Any], target: str | None) -> str:
    """What shaped a parse: every file of the project dbt reads (by content: a deploy may
    keep old file times), the versions of dbt and its adapters (their macros are in the
    parse), the target, the database name dbt-duckdb takes from the warehouse file's name,
    and the vars."""
    digest = hashlib.sha256()
    for path in sorted(_project_files()):
        digest.update(str(path.relative_to(DBT_PROJECT_DIR)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    warehouse = Path(os.environ.get("NIGHTJAR_WAREHOUSE", "warehouse.duckdb")).stem
    target = target or os.environ.get("DBT_TARGET")
    shaped_by = [_versions(), target, warehouse, parse_vars]
    digest.update(json.dumps(shaped_by, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:24]


# Every folder dbt_project.yml may name for resources, and the two files at the top
_READ_BY_DBT = ("models", "macros", "tests", "seeds", "snapshots", "analyses", "dbt_packages")


def _project_files() -> list[Path]:
    files = [DBT_PROJECT_DIR / "dbt_project.yml", DBT_PROJECT_DIR / "profiles.yml"]
    for folder in _READ_BY_DBT:
        files += [p for p in (DBT_PROJECT_DIR / folder).rglob("*") if p.is_file()]
    return [p for p in files if p.exists() and "__pycache__" not in p.parts]


def _versions() -> dict[str, str]:
    found = {}
    for package in ("dbt-core", "dbt-common", "dbt-adapters", "dbt-duckdb", "dbt-spark"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[package] = importlib.metadata.version(package)
    return found


def _read(key: str) -> bytes | None:
    """A kept parse, marked as used (the least recently used go first); None if missing."""
    path = PARSES / f"{key}.pickle"
    try:
        kept = path.read_bytes()
        os.utime(path)
    except OSError:
        return None
    return kept


def _parse(parse_vars: Mapping[str, Any], target: str | None, key: str) -> bytes:
    from dbt.cli.main import dbtRunner

    PARSES.mkdir(parents=True, exist_ok=True)
    # A folder of its own: two nights parsing at once never share dbt's partial parse file.
    scratch = Path(tempfile.mkdtemp(prefix=".parsing-", dir=PARSES))
    try:
        how = ["--target-path", str(scratch), "--log-path", str(scratch), "--no-partial-parse"]
        how += ["--log-level", "none", "--no-write-json"]
        how += ["--target", target] if target else []
        ran = dbtRunner().invoke(["parse", "--vars", json.dumps(parse_vars), *_WHERE, *how])
        _pass_on_interrupts(ran)
        if not ran.success or ran.result is None:
            raise RuntimeError(f"dbt parse failed: {_first_line(str(ran.exception))}")
        kept = _dumps(ran.result)
        draft = scratch / "parse.pickle"
        draft.write_bytes(kept)
        draft.replace(PARSES / f"{key}.pickle")  # whole or not at all
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _forget_old_parses()
    return kept


def _dumps(manifest) -> bytes:
    """The manifest's fields, pickled; not the manifest itself: dbt 1.11's
    Manifest.__reduce_ex__ passes its fields by position and misses two of them. The
    lookups, locks and caches (the fields named with `_`) are built again when first used."""
    return pickle.dumps({f.name: getattr(manifest, f.name) for f in _fields(manifest)})


def _loads(kept: bytes):
    from dbt.contracts.graph.manifest import Manifest

    return Manifest(**pickle.loads(kept))


def _fields(manifest) -> list:
    return [f for f in dataclasses.fields(manifest) if not f.name.startswith("_")]


def _forget_old_parses() -> None:
    """The least recently used parses beyond KEPT_PARSES, and drafts a killed parse left."""
    parses = sorted(PARSES.glob("*.pickle"), key=_mtime, reverse=True)
    for old in parses[KEPT_PARSES:]:
        with contextlib.suppress(OSError):
            old.unlink()
    for draft in PARSES.glob(".parsing-*"):
        if time.time() - _mtime(draft) > ABANDONED_AFTER_S:
            shutil.rmtree(draft, ignore_errors=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _fill_placeholders(manifest, values: Mapping[str, Any]) -> None:
    """The nightly vars that reached a node's config at parse time, given tonight's values
    (and in the copies dbt keeps of it: the unrendered config, the `graph` context)."""
    for node in manifest.nodes.values():
        for config in (node.config._extra, node.unrendered_config):
            for name, value in list(config.items()):
                config[name] = _filled(value, values)
    if manifest.flat_graph:
        manifest.flat_graph = _filled(manifest.flat_graph, values)


def _filled(value: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(value, str) and "@@nightjar-var:" in value:
        for name, tonight in values.items():
            placeholder = _PLACEHOLDER.format(name)
            if value == placeholder:
                return tonight
            value = value.replace(placeholder, "" if tonight is None else str(tonight))
        return value
    if isinstance(value, dict):
        return {k: _filled(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_filled(v, values) for v in value]
    return value
