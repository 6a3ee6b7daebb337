"""How the sample landing spells values in its CSV files (pipelines/demo/sample_data.py):
ids, dates, money, and booleans and timestamps in the several spellings real exporters use,
so that the contract's parsers meet them all."""

from __future__ import annotations

import numpy as np
import polars as pl

TS_FORMAT = "%Y-%m-%dT%H:%M:%S"


OFFSETS = ("+01:00", "+02:00", "-05:00", "-08:00", "+09:00", "+05:30", "-03:00", "+00:00")
OFFSET_SECONDS = np.array([3600, 7200, -18000, -28800, 32400, 19800, -10800, 0], dtype=np.int64)
TS_SUFFIXES = pl.Series(("Z", "", *OFFSETS))
BOOLEANS = pl.Series(("true", "false", "TRUE", "1", "True", "FALSE", "0", "False"))


def ids(prefix: str, nums: np.ndarray, width: int) -> pl.Series:
    return prefix + pl.Series(nums, dtype=pl.Int64).cast(pl.String).str.zfill(width)


def pick(pool: pl.Series, idx: np.ndarray, missing: np.ndarray) -> pl.Series:
    return pool.gather(pl.Series(idx, dtype=pl.Int64).scatter(np.flatnonzero(missing), None))


def dates(days: np.ndarray, present: np.ndarray) -> pl.Series:
    s = pl.Series(days, dtype=pl.Int32).scatter(np.flatnonzero(~present), None)
    return s.cast(pl.Date).cast(pl.String)


def booleans(rng: np.random.Generator, values: np.ndarray, variant_share: float) -> pl.Series:
    variant = rng.integers(0, 3, size=values.size)
    code = np.where(values, 2 + variant, 5 + variant)
    code = np.where(rng.random(values.size) < variant_share, code, np.where(values, 0, 1))
    return BOOLEANS.gather(code)


def timestamps(rng: np.random.Generator, secs: np.ndarray) -> pl.Series:
    # Same instant, three spellings: UTC with Z, local time with its offset, and bare UTC.
    style = rng.choice(3, size=secs.size, p=(0.72, 0.1, 0.18))
    offset = rng.integers(0, len(OFFSETS), size=secs.size)
    local = secs + np.where(style == 2, OFFSET_SECONDS[offset], 0)
    text = pl.from_epoch(pl.Series(local, dtype=pl.Int64), time_unit="s").dt.strftime(TS_FORMAT)
    return text + TS_SUFFIXES.gather(np.where(style == 2, 2 + offset, style))


def money(cents: np.ndarray) -> pl.Series:
    s = pl.Series(cents, dtype=pl.Int64)
    return (s // 100).cast(pl.String) + "." + (s % 100).cast(pl.String).str.zfill(2)
