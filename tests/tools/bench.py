"""`make bench`: how long a night takes at scale, against what DuckDB alone needs.

For each scale it generates a landing once (cached outside the repository, in
$NIGHTJAR_BENCH_CACHE or ~/.cache/nightjar-bench), loads the history into a fresh warehouse
with `nightjar run` (as an operator would: its first night, a baseline that records who is
where and mails no one), then times the nightly run of the one new day, a night in steady state:
wall time split by stage (read from Dagster's step records and dbt's run results), peak
memory of the whole process tree (Nightjar and its dbt subprocess), rows per second. It
times the hand-written DuckDB script `tests/tools/bench_floor.sql`, which computes the same
customer view and cohorts from the same raw tables, checks that both agree on every cohort's
size, and prints the ratio. Last, it sends a cohort of 200,000 messages through the SendGrid
sender to the local SendGrid-compatible server (answering at once, then after 0.1 s as
SendGrid does) and through the outbox, ledger included, a year of earlier sends in it: three
times each, its median judged.

    python -m tests.tools.bench --scales S,M
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FLOOR_SQL = Path(__file__).with_name("bench_floor.sql")
END = dt.date(2026, 11, 20)  # the new day; fixed, so that a cached landing is reused
# contacts; orders and web events follow (about 10 and 50 each). L is extrapolated
# (extrapolate_l): its landing would not fit beside its warehouse on the bench machine.
SCALES = {"XS": 10_000, "S": 100_000, "M": 1_000_000, "L": 10_000_000}
COHORTS = ("cohort_birthday", "cohort_loyalty", "journey_winback")
STARTUP, DBT_STARTUP = "start-up (Python, Dagster)", "start-up (dbt)"
# What the dbt step does once its last node is done: the build's figures measured, its tables
# copied to `main`, the models' and tests' records stored by Dagster. It grows with the
# published tables, so it is not dbt's start-up.
PUBLISH = "publish"
JOURNEYS = "journeys (models and sends)"
# What was bought, will be bought and is worth (issue 17): its dbt folders' models
INTELLIGENCE = "predictions and recommendations"
INTELLIGENCE_FOLDERS = ("predictions", "intelligence")
# ... and the models elsewhere that only they need: the order lines and the fit's inputs
INTELLIGENCE_MODELS = (
    "int_order_lines_resolved", "int_order_lines", "order_lines_mismatched",
    "int_order_baskets_daily", "int_contacts_clv_inputs",
)  # fmt: skip
# How long after a step the memory it freed may still be the process's (the rest of the
# night's peak leaves those moments out)
MEMORY_SETTLES_S = 1.0
STAGES = (
    "ingest", "dbt", INTELLIGENCE, "cohorts and decisions", JOURNEYS, "send", "results",
    PUBLISH, STARTUP, DBT_STARTUP,
)  # fmt: skip
# Issue 20's targets; the seconds and megabytes of a night and a history load are M's.
TARGETS = {
    "fixed_s": 5.0,  # a night on an empty day, at any scale
    "floor_ratio": {"XS": 3.0, "S": 2.0, "M": 1.2},  # nightly ÷ floor, whole processes
    "nightly_s": 45.0,
    "nightly_mb": 2048.0,
    "history_s": 240.0,
    "history_mb": 4096.0,
    "load_ratio": 1.5,  # the history's ingest ÷ DuckDB's typed CSV load of the same files
    "growth": 1.2,
    "send_per_s": 20_000.0,
    "intelligence_s": 20.0,
    "intelligence_mb": 512.0,
    "cdnow_s": 30.0,
}
AT_M = "M"  # the scale the seconds and megabytes targets are set at


def cache_dir() -> Path:
    return Path(os.environ.get("NIGHTJAR_BENCH_CACHE") or Path.home() / ".cache/nightjar-bench")


# -- measuring a process tree ----------------------------------------------------------------


def _tree_rss_kb(pid: int) -> int:
    """Resident memory of a process and all its descendants (Linux /proc)."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += next(
                int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")
            )
            for task in Path(f"/proc/{current}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError, StopIteration, PermissionError):
            continue
    return total


@dataclass
class Measured:
    wall: float
    peak_mb: float
    output: str
    memory: list[tuple[float, float]] = field(default_factory=list)  # (epoch s, MB)

    def peaks_within(self, spans: list[tuple[float, float]], tail: float) -> tuple[float, float]:
        """(peak during the spans, peak at every other moment): a moment within `tail` s
        after a span counts as neither, as memory a step freed takes that long to leave
        the process."""
        within, elsewhere = [0.0], [0.0]
        for at, mb in self.memory:
            if any(start <= at <= end for start, end in spans):
                within.append(mb)
            elif not any(end < at <= end + tail for _, end in spans):
                elsewhere.append(mb)
        return max(within), max(elsewhere)


def measure(command: list[str], env: dict[str, str]) -> Measured:
    """Run a command; its wall time, the peak resident memory of its whole tree, and that
    memory over time (to tell which step needed it)."""
    started = time.monotonic()
    memory = []
    with tempfile.TemporaryFile("w+") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        while process.poll() is None:
            memory.append((time.time(), _tree_rss_kb(process.pid) / 1024))
            time.sleep(0.05)
        wall = time.monotonic() - started
        out.seek(0)
        output = out.read()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{output[-4000:]}")
    return Measured(wall, max((mb for _, mb in memory), default=0.0), output, memory)


# -- the landing ----------------------------------------------------------------------------


def landing_folder(contacts: int, days: int) -> Path:
    # "-lines": generated with order lines (a landing cached before them has none)
    return cache_dir() / f"landing-c{contacts}-d{days}-{END}-lines"


def landing(contacts: int, days: int) -> tuple[Path, dict[str, int]]:
    """A landing of `days` days of history and one new day ending END, generated once."""
    folder = landing_folder(contacts, days)
    marker = folder / ".complete.json"
    if not marker.exists():
        print(f"  generating {contacts:,} contacts over {days + 1} days into {folder} ...")
        command = [
            *nightjar(), "generate", "--contacts", str(contacts), "--days", str(days + 1),
            "--end", END.isoformat(), "--seed", "7", "--out", str(folder),
        ]  # fmt: skip
        subprocess.run(command, check=True, env=os.environ.copy())
        marker.write_text(json.dumps(_rows_in(folder / END.isoformat())))
    return folder, json.loads(marker.read_text())


def _rows_in(folder: Path) -> dict[str, int]:
    import polars as pl

    return {
        name: pl.scan_csv(folder / f"{name}.csv", infer_schema=False).select(pl.len()).collect()
        .item()
        for name in ("crm_contacts", "orders", "web_events", "order_lines")
    }  # fmt: skip


def nightjar() -> list[str]:
    return [sys.executable, "-m", "pipelines.cli"]


# -- one scale --------------------------------------------------------------------------------


@dataclass
class Night:
    wall: float
    peak_mb: float
    stages: dict[str, float] = field(default_factory=dict)
    rows: int = 0
    # the peak while the intelligence models ran, and the peak of the rest of the night
    intelligence_mb: float = 0.0
    without_intelligence_mb: float = 0.0

    @property
    def intelligence_added_mb(self) -> float:
        """What the intelligence models add to the night's peak: how far above the rest of
        the night they take it (nothing if the rest needed more)."""
        return max(0.0, self.intelligence_mb - self.without_intelligence_mb)


def run_history_and_night(contacts: int, days: int, work: Path) -> tuple[Night, Night, Path]:
    """The history load is the first night: it loads every folder up to the day before END,
    builds, and records a baseline. The nightly run then lands and runs END, as a night in
    steady state: only new occasions are sent. (A first night that sent its whole backlog
    would leave tens of thousands of journey steps held back by the frequency cap for the
    next night: a catch-up, not a steady state.)"""
    source, new_rows = landing(contacts, days)
    # The landing as the history load sees it: END's folder is not there yet (a landed later
    # date would keep the history load from sending).
    seen = work / "landing"
    seen.mkdir(parents=True)
    for entry in source.iterdir():
        if entry.name != END.isoformat() and not entry.name.startswith("."):
            (seen / entry.name).symlink_to(entry)
    warehouse = work / "warehouse.duckdb"
    env = _environment(work, seen)
    before = END - dt.timedelta(days=1)
    _read_once(source)
    print(f"  loading {days} days of history ({contacts:,} contacts) ...")
    loaded = measure([*nightjar(), "run", "--date", before.isoformat()], env)
    history = Night(loaded.wall, loaded.peak_mb, stages=_stages(env, loaded.wall))
    history.rows = _warehouse_rows(warehouse)
    print(f"  the nightly run of {END} ...")
    (seen / END.isoformat()).symlink_to(source / END.isoformat())
    # The sample data plants 1% of birthdays on its last day (so that a demo has some): the
    # send check would rightly hold that jump for a person to release, as here.
    release = ["--approve", "cohort_size:cohort_birthday"]
    ran = measure([*nightjar(), "run", "--date", END.isoformat(), *release], env)
    night = Night(ran.wall, ran.peak_mb, _stages(env, ran.wall), sum(new_rows.values()))
    # dbt runs one model at a time (profiles.yml: threads 1): a moment is one model's
    night.intelligence_mb, night.without_intelligence_mb = ran.peaks_within(
        _intelligence_spans(), tail=MEMORY_SETTLES_S
    )
    return history, night, warehouse


def _read_once(folder: Path) -> None:
    """Every file of the landing read once before it is timed: the history's ingest then
    reads it from memory, as DuckDB's own load of it does afterwards (load_floor). Without
    it the ingest paid the disk where the floor did not: the XS history's ingest took 3.3
    and 4.1 s in `make bench` at 0e234b3, a scale after another's landing, and 2.4 s with
    its files read once."""
    for path in sorted(p for p in folder.glob("*/*") if p.is_file()):
        with path.open("rb") as file:
            while file.read(1 << 24):
                pass


def run_empty_day(work: Path) -> Night:
    """The day after END, landed with no rows, run after END in `work`: what a night costs
    whatever its data, its fixed cost."""
    day = END + dt.timedelta(days=1)
    print(f"  an empty day, {day} ...")
    seen = work / "landing"
    land_empty_day(seen / END.isoformat(), seen / day.isoformat())
    env = _environment(work, seen)
    # END's planted birthdays leave the cohort: a drop the send check would hold for a person
    release = ["--approve", "cohort_size:cohort_birthday"]
    ran = measure([*nightjar(), "run", "--date", day.isoformat(), *release], env)
    return Night(ran.wall, ran.peak_mb, _stages(env, ran.wall))


def land_empty_day(like: Path, folder: Path) -> None:
    """A day's folder whose extracts (those of `like`) hold their header and no row."""
    folder.mkdir()
    for extract in sorted(like.glob("*.csv")):
        with extract.open("rb") as source:
            (folder / extract.name).write_bytes(source.readline())
    (folder / "_SUCCESS").touch()


def _environment(work: Path, landing: Path) -> dict[str, str]:
    """A Nightjar of its own in `work`, reading `landing`; its first night records a baseline."""
    (work / "dagster").mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "NIGHTJAR_LANDING": str(landing),
        "NIGHTJAR_WAREHOUSE": str(work / "warehouse.duckdb"),
        "NIGHTJAR_OUTBOX": str(work / "outbox"),
        "DAGSTER_HOME": str(work / "dagster"),
        "SENDGRID_API_KEY": "",
        "NIGHTJAR_FIRST_NIGHT": "baseline",
        # every message carries a signed one-click link (docs/contract.md §17)
        "NIGHTJAR_UNSUBSCRIBE_SECRET": "bench-secret-that-signs-one-click-unsubscribe-links",
    }


def cdnow_history() -> Measured:
    """The real CDNOW history (its 1/10 sample: 2,357 customers, 6,919 purchase days, 546
    daily folders of 1997 and 1998, tests/support/cdnow.py) loaded and its first night run,
    as of its last day, from one `nightjar run`."""
    from tests.support.cdnow import LAST, write_cdnow_landing

    with tempfile.TemporaryDirectory(prefix="nightjar-bench-cdnow-", dir=cache_dir()) as tmp:
        work = Path(tmp)
        write_cdnow_landing(work / "landing")
        env = {**_environment(work, work / "landing"), "NIGHTJAR_FIRST_DATE": ""}
        return measure([*nightjar(), "run", "--date", LAST.isoformat()], env)


def _warehouse_rows(warehouse: Path) -> int:
    import duckdb

    with duckdb.connect(str(warehouse), read_only=True) as con:
        return sum(
            con.execute(f"select count(*) from raw.{t}").fetchall()[0][0]
            for t in ("crm_contacts", "orders", "web_events", "order_lines")
        )


def _stages(env: dict[str, str], wall: float) -> dict[str, float]:
    """The latest run's wall time by stage, from Dagster's step records and dbt's results.
    The fixed start-up costs are stages of their own: Python and Dagster until the first
    step, and dbt's (its start, the parse it loads, its connection, between nodes) beside
    the models' own times and the publishing after them."""
    from dagster import DagsterInstance

    os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
    with DagsterInstance.get() as instance:
        (run,) = instance.get_runs(limit=1)
        stats = instance.get_run_step_stats(run.run_id)
    steps = {s.step_key: s.end_time - s.start_time for s in stats}
    ended = {s.step_key: s.end_time for s in stats}
    stages = dict.fromkeys(STAGES, 0.0)
    journeys = _journey_steps()
    for key, seconds in steps.items():
        if key.startswith("raw__"):
            stages["ingest"] += seconds
        elif key == "warehouse_models":
            results = _dbt_results()  # run_results.json, read once for both below
            models = _dbt_model_seconds(results)
            stages["dbt"] += models.get("other", 0.0)
            stages[INTELLIGENCE] += sum(models.get(f, 0.0) for f in INTELLIGENCE_FOLDERS)
            stages["cohorts and decisions"] += models.get("cohorts", 0.0)
            stages["cohorts and decisions"] += models.get("decisions", 0.0)
            stages[JOURNEYS] += models.get("journeys", 0.0)
            startup, published = split_dbt_step(
                seconds, ended[key], sum(models.values()), _last_node_end(results)
            )
            stages[DBT_STARTUP] += startup
            stages[PUBLISH] += published
        elif key == "send_checks":
            stages["cohorts and decisions"] += seconds
        elif key in journeys:
            stages[JOURNEYS] += seconds
        elif key.startswith("send_"):
            stages["send"] += seconds
        elif key.startswith("results_"):
            stages["results"] += seconds
    stages[STARTUP] = wall - sum(steps.values())
    return stages


def split_dbt_step(
    step_s: float, step_end: float, nodes_s: float, last_node_end: float | None
) -> tuple[float, float]:
    """(dbt's start-up, publishing) of the dbt step: publishing from the last node's end to
    the step's, dbt's start-up the rest of what its nodes' own times leave."""
    published = 0.0 if last_node_end is None else max(0.0, step_end - last_node_end)
    return max(0.0, step_s - nodes_s - published), published


def _journey_steps() -> set[str]:
    """The journeys' send and results steps (what the journeys add to a night, beside their
    models)."""
    from models.manifest import load_manifest
    from models.programs import campaigns_from_manifest

    journeys = [c for c in campaigns_from_manifest(load_manifest()) if c.is_journey]
    return {c.asset_name for c in journeys} | {f"results_{c.name}" for c in journeys}


# the night's dbt artifacts, kept as target/last_nightly (assets/warehouse/dbt_models.py)
RUN_RESULTS = REPO / "dbt_project" / "target" / "last_nightly" / "run_results.json"
_FOLDERS = ("cohorts", "decisions", "journeys", *INTELLIGENCE_FOLDERS)


def _dbt_results() -> list[tuple[str, dict]]:
    """(model folder, result) of each node of the latest build; a test counts with the model
    it tests."""
    from models.manifest import load_manifest

    if not RUN_RESULTS.exists():
        return []
    nodes = load_manifest()["nodes"]
    results = []
    for result in json.loads(RUN_RESULTS.read_text())["results"]:
        node = nodes.get(result["unique_id"], {})
        model = nodes.get(node.get("attached_node") or "", node)
        fqn = model.get("fqn", [])
        folder = next((f for f in _FOLDERS if f in fqn), "other")
        if model.get("name") in INTELLIGENCE_MODELS:
            folder = INTELLIGENCE_FOLDERS[0]
        results.append((folder, result))
    return results


def _dbt_model_seconds(results: list[tuple[str, dict]]) -> dict[str, float]:
    """Seconds dbt spent per model folder (cohorts, decisions, ...) in the build's
    `results` (_dbt_results)."""
    folders: dict[str, float] = {}
    for folder, result in results:
        folders[folder] = folders.get(folder, 0.0) + result["execution_time"]
    return folders


def _intelligence_spans() -> list[tuple[float, float]]:
    """When each intelligence model (and its tests) ran in the latest build, in epoch
    seconds."""
    spans = []
    for folder, result in _dbt_results():
        for timing in result.get("timing", []):
            if folder in INTELLIGENCE_FOLDERS and timing.get("name") == "execute":
                started, completed = timing.get("started_at"), timing.get("completed_at")
                if started and completed:
                    spans.append((_epoch(started), _epoch(completed)))
    return spans


def _last_node_end(results: list[tuple[str, dict]]) -> float | None:
    """When the build's last node completed, in epoch seconds (None: no results)."""
    ends = [
        _epoch(timing["completed_at"])
        for _, result in results
        for timing in result.get("timing", [])
        if timing.get("completed_at")
    ]
    return max(ends, default=None)


def _epoch(moment: str) -> float:
    return dt.datetime.fromisoformat(moment.replace("Z", "+00:00")).timestamp()


# -- the floor ------------------------------------------------------------------------------


def floor(warehouse: Path) -> tuple[float, float, dict[str, int]]:
    """(start-up s, SQL s, cohort sizes) of the hand-written DuckDB script, run in a fresh
    process against a copy of the warehouse's raw tables (read-only)."""
    command = [sys.executable, "-m", "tests.tools.bench", "--floor", str(warehouse)]
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"the floor script failed:\n{done.stderr[-3000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return report["startup"], report["sql"], report["cohorts"]


def floor_child(warehouse: str) -> None:
    started = time.monotonic()
    import duckdb

    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    con.execute(f"attach '{warehouse}' as w (read_only)")
    # Nightjar's state (the suppressions the floor reads too) lives in a file of its own
    state = Path(warehouse).with_name("state.duckdb")
    con.execute(f"attach '{state}' as nightjar_state (read_only)")
    startup = time.monotonic() - started
    sql = FLOOR_SQL.read_text().replace("$as_of", f"date '{END.isoformat()}'")
    began = time.monotonic()
    for statement in (s for s in sql.split(";\n") if s.strip()):
        con.execute(statement)
    cohorts = dict(con.execute("select cohort, count(*) from cohorts group by 1").fetchall())
    print(json.dumps({"startup": startup, "sql": time.monotonic() - began, "cohorts": cohorts}))


def load_floor(contacts: int, days: int) -> float:
    """Seconds DuckDB takes to load the history's extracts (every folder before END) into a
    fresh file as typed tables (its own CSV reader, the raw tables' types), the floor of the
    history load's ingest."""
    command = [sys.executable, "-m", "tests.tools.bench", "--load-floor", f"{contacts},{days}"]
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"the load floor failed:\n{done.stderr[-3000:]}")
    return float(done.stdout.split()[-1])


def load_floor_child(spec: str) -> None:
    import duckdb

    from models.extracts import EXTRACTS

    contacts, days = (int(part) for part in spec.split(","))
    folder = landing_folder(contacts, days)
    kinds = {"timestamps": "timestamptz", "dates": "date", "booleans": "boolean"}
    kinds |= {"decimals": "decimal(18, 4)", "integers": "integer"}
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        started = time.monotonic()
        con = duckdb.connect(str(Path(tmp) / "floor.duckdb"))
        con.execute("set TimeZone = 'UTC'")
        con.execute("set memory_limit = '1GB'")
        for name, spec_ in EXTRACTS.items():
            files = sorted(
                str(f) for f in folder.glob(f"*/{name}.csv") if f.parent.name < END.isoformat()
            )
            typed = dict.fromkeys(spec_.columns, "varchar")
            for kind, sql_type in kinds.items():
                typed |= dict.fromkeys(getattr(spec_, kind), sql_type)
            columns = ", ".join(f"'{c}': '{t}'" for c, t in typed.items())
            con.execute(
                f"create table {name} as select * from read_csv(?, header = true, "
                f"columns = {{{columns}}}, filename = true)",
                [files],
            )
        con.close()
        print(f"{time.monotonic() - started:.3f}")


def nightjar_cohorts(warehouse: Path) -> dict[str, int]:
    """Each cohort's size as of END. Win-back's lapsed buyers include those the customer-value
    model holds back (p_alive at or above winback_max_p_alive): the floor computes the lapse
    rule, not the model."""
    import duckdb

    with duckdb.connect(str(warehouse), read_only=True) as con:
        sizes = {
            c: con.execute(f"select count(*) from main.{c} where as_of_date = ?", [END]).fetchall()[
                0
            ][0]
            for c in COHORTS
        }
        held_back = con.execute(
            """
            select count(*) from main.audience
            where order_count > 1 and days_since_last_purchase >= 180 and p_alive >= 0.5
            """
        ).fetchall()[0][0]
    sizes["journey_winback"] += held_back
    return sizes


# -- sending --------------------------------------------------------------------------------


# A year of about 14,000 messages a night in the ledger before the bench's: each batch's
# marks look for their rows in it
EARLIER_SENDS = 5_000_000


# SendGrid's own answers take a tenth of a second or more over the internet; the local
# server answers at once. Both are measured: what Nightjar costs, and what a send then takes.
SENDGRID_ANSWER_S = 0.1
SENDS = (("sendgrid", 0.0), ("sendgrid", SENDGRID_ANSWER_S), ("outbox", 0.0))


# One run of a send moved by a quarter from one hour to the next on this shared two-core
# machine (the local SendGrid server takes one of the cores), and by a few percent within an
# hour: each channel is timed this many times, from copies of one cohort, and its median
# judged. That steadies a figure within its hour, not from one hour to the next.
SEND_RUNS = 3


def send_rates(messages: int, channel: str, answer_after: float = 0.0) -> list[float]:
    """Messages per second through a sender, ledger included, SEND_RUNS times over copies of
    one cohort; the local SendGrid's answers given after `answer_after` seconds."""
    from tests.tools import chaos

    with tempfile.TemporaryDirectory(prefix="nightjar-bench-send-") as tmp:
        cohort = Path(tmp) / "cohort"
        chaos.build_cohort(cohort, messages, EARLIER_SENDS)
        rates = []
        for run in range(SEND_RUNS):
            root = Path(tmp) / f"run-{run}"
            shutil.copytree(cohort, root)  # the warehouse and its ledger as built, each time
            rates.append(_send_rate(root, messages, channel, answer_after))
            shutil.rmtree(root)
        return rates


def _send_rate(root: Path, messages: int, channel: str, answer_after: float) -> float:
    if channel == "sendgrid":
        from tests.support.sendgrid_server import SendGridTestServer
        from tests.tools import chaos

        with SendGridTestServer(
            chaos.API_KEY, record_bodies=False, answer_after=answer_after
        ) as server:
            return _timed_child(root, channel, server.url, messages)
    return _timed_child(root, channel, None, messages)


def _timed_child(root: Path, channel: str, url: str | None, messages: int) -> float:
    from tests.tools import chaos

    child = chaos._start_child(chaos._env(root, channel, url), channel)
    out, err = child.communicate(timeout=3600)
    if child.returncode != 0:
        raise RuntimeError(f"the {channel} send failed:\n{err[-3000:]}")
    report = json.loads(out.strip().splitlines()[-1])
    if report["sent"] != messages:
        raise RuntimeError(f"the {channel} send sent {report['sent']} of {messages}")
    return messages / report["seconds"]


# -- the table --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.tools.bench")
    parser.add_argument("--scales", default="XS,S,M,L")
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--floor", help=argparse.SUPPRESS)
    parser.add_argument("--load-floor", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.floor:
        floor_child(args.floor)
        return 0
    if args.load_floor:
        load_floor_child(args.load_floor)
        return 0
    print(f"Nightjar bench on {os.cpu_count()} cores, {_memory_gb():.0f} GB; cache {cache_dir()}")
    cache_dir().mkdir(parents=True, exist_ok=True)  # a fresh machine has none yet
    lines = []
    ok = True
    measured: dict[str, tuple[Night, Night]] = {}
    scales = [s.strip() for s in args.scales.split(",") if s.strip()]
    for name in [s for s in scales if s != "L"]:  # L is extrapolated, below
        contacts = SCALES[name]
        print(f"scale {name}:")
        with tempfile.TemporaryDirectory(prefix=f"nightjar-bench-{name}-", dir=cache_dir()) as tmp:
            history, night, warehouse = run_history_and_night(contacts, 730, Path(tmp) / "long")
            f_start, f_sql, f_cohorts = floor(warehouse)
            f_load = load_floor(contacts, 730)
            ours = nightjar_cohorts(warehouse)
            agree = all(f_cohorts.get(c, 0) == n for c, n in ours.items())
            ok &= agree
            empty = run_empty_day(Path(tmp) / "long")  # after the floor: it moves the warehouse on
            _, short, _ = run_history_and_night(contacts, 73, Path(tmp) / "short")
        table = _scale_lines(
            name, contacts, history, (night, short, empty), (f_start, f_sql, f_load), ours, agree
        )
        print("\n".join(table), flush=True)  # each scale as soon as it is measured
        lines += table
        measured[name] = (history, night)
    if "L" in scales:
        lines += extrapolate_l(measured)
    cdnow = cdnow_history()
    lines.append(
        f"CDNOW history     {cdnow.wall:8.1f} s  546 folders of 1997-98 loaded, first night run; "
        f"peak {cdnow.peak_mb:,.0f} MB   target <= {TARGETS['cdnow_s']:.0f} s "
        f"{'ok' if cdnow.wall <= TARGETS['cdnow_s'] else 'MISSED'}"
    )
    print()
    print("\n".join(lines))
    if args.messages:
        print()
        for channel, answer_after in SENDS:
            rates = sorted(send_rates(args.messages, channel, answer_after))
            rate = statistics.median(rates)
            mark = "ok" if rate >= TARGETS["send_per_s"] else "MISSED"
            waits = f", answers after {answer_after} s" if answer_after else ""
            print(f"send {args.messages:,} via {channel}{waits}: {rate:>9,.0f} msg/s, the median "
                  f"of {len(rates)} ({rates[0]:,.0f} to {rates[-1]:,.0f}) "
                  f"(target >= {TARGETS['send_per_s']:,.0f})  {mark}")  # fmt: skip
    return 0 if ok else 1


def _scale_lines(name, contacts, history, nights, floor_seconds, cohorts, agree):
    """`nights`: the night after 730 days, after 73 days, and the empty day's."""
    night, short, empty = nights
    f_start, f_sql, f_load = floor_seconds

    def mark(good: bool, where: str = AT_M) -> str:
        if name != where:
            return f"(target at {where})"
        return "ok" if good else "MISSED"

    floor_total = f_start + f_sql
    ratio = night.wall / floor_total
    startups = night.stages[STARTUP] + night.stages[DBT_STARTUP]
    work_ratio = (night.wall - startups) / max(f_sql, 1e-9)
    growth = night.wall / short.wall
    floor_target = TARGETS["floor_ratio"].get(name)
    load_ratio = history.stages["ingest"] / max(f_load, 1e-9)
    return [
        f"== scale {name}: {contacts:,} contacts, {history.rows:,} raw rows after 730 days",
        f"history load      {history.wall:8.1f} s  {history.rows / history.wall:>11,.0f} rows/s  "
        f"peak {history.peak_mb:,.0f} MB   target <= {TARGETS['history_s']:.0f} s "
        f"{mark(history.wall <= TARGETS['history_s'])}, <= {TARGETS['history_mb']:,.0f} MB "
        f"{mark(history.peak_mb <= TARGETS['history_mb'])}",
        "  " + ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in history.stages.items()),
        f"  raw load: ingest {history.stages['ingest']:.1f} s, DuckDB's typed CSV load of the same "
        f"files {f_load:.1f} s: {load_ratio:.2f} x (target <= {TARGETS['load_ratio']}) "
        f"{mark(load_ratio <= TARGETS['load_ratio'], name)}",
        f"nightly run       {night.wall:8.1f} s  {night.rows / night.wall:>11,.0f} rows/s  "
        f"peak {night.peak_mb:,.0f} MB   target <= {TARGETS['nightly_s']:.0f} s "
        f"{mark(night.wall <= TARGETS['nightly_s'])}, <= {TARGETS['nightly_mb']:,.0f} MB "
        f"{mark(night.peak_mb <= TARGETS['nightly_mb'])}",
        *[f"  {stage:28} {seconds:8.1f} s" for stage, seconds in night.stages.items()],
        _intelligence_line(night, mark),
        f"empty day         {empty.wall:8.1f} s  the fixed cost of a night: start-up "
        f"{empty.stages[STARTUP]:.1f} s (Python, Dagster) + {empty.stages[DBT_STARTUP]:.1f} s "
        f"(dbt), steps {empty.wall - empty.stages[STARTUP] - empty.stages[DBT_STARTUP]:.1f} s   "
        f"target <= {TARGETS['fixed_s']:.0f} s {mark(empty.wall <= TARGETS['fixed_s'], name)}",
        f"after 73 days     {short.wall:8.1f} s  730/73 days {growth:.2f} x "
        f"(target <= {TARGETS['growth']}) {mark(growth <= TARGETS['growth'])}",
        "  " + ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in short.stages.items()),
        f"DuckDB floor      {floor_total:8.1f} s  (start-up {f_start:.2f} s, SQL {f_sql:.1f} s)",
        f"nightly / floor   {ratio:8.1f} x  (target <= {floor_target}) "
        f"{mark(floor_target is not None and ratio <= floor_target, name)}; "
        f"without either's start-up {work_ratio:.1f} x",
        f"cohorts           {', '.join(f'{c} {n:,}' for c, n in cohorts.items())}; "
        f"the floor agrees: {'yes' if agree else 'NO'}",
    ]


def extrapolate_l(measured: dict[str, tuple[Night, Night]]) -> list[str]:
    """L (ten times M) from the two largest scales measured, stated as such: each stage of
    the history load and of the night grows from the larger scale as it grew between the
    two (a power law in the contacts), so fixed costs stay fixed. L is not generated: its
    landing would be ten times M's on disk, its warehouse beside it."""
    done = [name for name in SCALES if name in measured]
    if len(done) < 2:
        return ["L (10,000,000 contacts): needs two measured scales to extrapolate from"]
    small, large = done[-2], done[-1]
    times = SCALES["L"] / SCALES[large]
    step = math.log(SCALES[large] / SCALES[small])
    landing_gb = _size_gb(landing_folder(SCALES[large], 730))
    lines = [
        f"== scale L: {SCALES['L']:,} contacts, EXTRAPOLATED from {small} and {large}, not run "
        f"(its landing alone would take about {landing_gb * times:,.0f} GB; "
        f"{shutil.disk_usage(cache_dir()).free / 1e9:,.0f} GB free)"
    ]
    for label, index in (("history load", 0), ("nightly run", 1)):
        stages = {}
        for stage, seconds in measured[large][index].stages.items():
            before = max(measured[small][index].stages.get(stage, 0.0), 1e-3)
            growth = math.log(max(seconds, 1e-3) / before) / step
            stages[stage] = seconds * times ** max(growth, 0.0)
        lines.append(
            f"{label:17} ~{sum(stages.values()):7.0f} s  ("
            + ", ".join(f"{stage} {seconds:.0f} s" for stage, seconds in stages.items())
            + ")"
        )
    return lines


def _size_gb(folder: Path) -> float:
    files = (p for p in folder.rglob("*") if p.is_file())
    return sum(p.stat().st_size for p in files) / 1e9


def _intelligence_line(night: Night, mark) -> str:
    seconds, added = night.stages[INTELLIGENCE], night.intelligence_added_mb
    return (
        f"{INTELLIGENCE} add {seconds:.1f} s (target <= {TARGETS['intelligence_s']:.0f} s) "
        f"{mark(seconds <= TARGETS['intelligence_s'])} and {added:,.0f} MB (target <= "
        f"{TARGETS['intelligence_mb']:,.0f} MB) {mark(added <= TARGETS['intelligence_mb'])}: "
        f"peak {night.intelligence_mb:,.0f} MB while they ran, "
        f"{night.without_intelligence_mb:,.0f} MB in the rest of the night"
    )


def _memory_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


if __name__ == "__main__":
    sys.exit(main())
