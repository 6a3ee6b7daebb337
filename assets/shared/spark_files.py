"""What Spark reads, as files under NIGHTJAR_SPARK_DIR (docs/contract.md §18), written from
the warehouse by DuckDB alone: the load and its erasures call this on any machine, pyspark
or not (assets/shared/spark_engine.py registers the files with Spark).

- `raw/<table>/<part>.parquet`: the warehouse's raw rows, one file per source file, written
  again only when that file's rows' count or checksum changed (tonight's folder, a reload, an
  erasure); any other file in the folder is removed. `_parts.json` keeps what each file was
  written from (Spark skips names starting with `_` or `.`).
- `nightjar/`, `nightjar_predictions/`, `tables/`: what a build copies or makes (the state it
  reads, the predictions' fit, dbt's tables), made again by every build.

Every load, failed or not, ends here: what builds made is removed first, then the raw files
are brought up to date, so an erasure the load applied leaves no copy of the erased data in
Spark's files, even if that night's build never runs or the refresh is killed half way (the
next load finishes it). Back on DuckDB, the folders this module writes are removed: no
erasure would reach them any more.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb

from assets.shared.warehouse import connect
from models.clv_engine import PREDICTIONS_SCHEMA
from models.manifest import load_manifest
from models.settings import Settings

RAW = "raw"
STATE = "nightjar"
TABLES = "tables"  # spark.sql.warehouse.dir: dbt's own
_MADE_BY_A_BUILD = (STATE, PREDICTIONS_SCHEMA, TABLES)
_PARTS = "_parts.json"


def refresh_after_load(settings: Settings) -> dict[str, int]:
    """After a load and its erasures, whether it succeeded or not: Spark's copy of the raw
    rows up to date (NIGHTJAR_ENGINE=spark) or gone (duckdb). Returns the files written, by
    table."""
    root = settings.spark_path
    if settings.engine != "spark":
        if any((root / RAW).glob(f"*/{_PARTS}")):  # only a folder this module wrote
            _remove(root, (RAW, *_MADE_BY_A_BUILD))
        return {}
    _remove(root, _MADE_BY_A_BUILD)
    with connect(settings.warehouse) as con:
        return {
            table: write_raw_parts(con, root / RAW / table, table)
            for table in source_tables(load_manifest(), "raw")
        }


def _remove(root: Path, names: tuple[str, ...]) -> None:
    for name in names:
        if (root / name).exists():
            shutil.rmtree(root / name)


def missing_for_spark() -> list[str]:
    """What NIGHTJAR_ENGINE=spark needs and this machine lacks, each with its remedy."""
    missing = []
    if importlib.util.find_spec("pyspark") is None:
        missing.append("pyspark (pip install -e '.[spark]')")
    java_home = os.environ.get("JAVA_HOME", "").strip()
    if not shutil.which("java") and not (java_home and (Path(java_home) / "bin" / "java").exists()):
        missing.append("Java, 17 or later (no `java` on PATH, nor in JAVA_HOME)")
    return missing


def source_tables(manifest: Mapping[str, Any], source: str) -> list[str]:
    """The tables dbt_project's source `source` declares (models/staging/_sources.yml)."""
    return sorted(
        node["name"] for node in manifest["sources"].values() if node["source_name"] == source
    )


def write_raw_parts(con: duckdb.DuckDBPyConnection, folder: Path, table: str) -> int:
    """`raw.<table>` as one parquet file per source file in `folder`; returns how many were
    written. A run killed half way leaves files the next one checks again."""
    folder.mkdir(parents=True, exist_ok=True)
    parts_file = folder / _PARTS
    before = json.loads(parts_file.read_text()) if parts_file.exists() else {}
    now = {
        part_name(source_file): [source_file, f"{rows}:{checksum}"]
        for source_file, rows, checksum in con.execute(
            # a sum, not a xor: two equal rows changed alike must change it too
            f"select source_file, count(*), sum(hash(t)::hugeint) from raw.{table} as t group by 1"
        ).fetchall()
    }
    changed = [
        part for part, (_, fingerprint) in now.items()
        if (before.get(part) or [None, None])[1] != fingerprint or not (folder / part).exists()
    ]  # fmt: skip
    for part in changed:
        source_file = now[part][0].replace("'", "''")
        copy_to_parquet(
            con, f"(select * from raw.{table} where source_file = '{source_file}')", folder / part
        )
    _write_atomically(parts_file, json.dumps(now, sort_keys=True))
    # A source file the warehouse no longer holds, or a draft a killed run left
    for path in folder.iterdir():
        if path.name not in now and path.name != _PARTS:
            path.unlink()
    return len(changed)


def part_name(source_file: str) -> str:
    return hashlib.sha256(source_file.encode()).hexdigest()[:24] + ".parquet"


def copy_to_parquet(con: duckdb.DuckDBPyConnection, relation: str, path: Path) -> None:
    """`relation` as one parquet file at `path`, written aside and renamed into place: Spark
    never reads half a file."""
    draft = path.with_name(f".{path.name}.draft")
    quoted = str(draft).replace("'", "''")
    con.execute(f"copy {relation} to '{quoted}' (format parquet)")
    draft.replace(path)


def _write_atomically(path: Path, text: str) -> None:
    draft = path.with_name(f".{path.name}.draft")
    draft.write_text(text)
    draft.replace(path)
