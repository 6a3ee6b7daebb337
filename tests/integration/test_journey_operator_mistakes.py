"""Journeys through an operator's mistakes and crashes between nights (docs/contract.md §11,
§15), through the real `nightjar` CLI and the outbox: an older state restored, a state lost
with several nights in the outbox, a run killed after the journey's state or its ledger rows
were written (either without the other) and before its messages left, a step renamed
mid-journey. Found by an attack on the journeys.

A generated landing (600 contacts, 60 days to 2026-03-10), a baseline on 2026-03-03, then one
folder a night."""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from models.settings import DBT_PROJECT_DIR
from senders.outbox import outbox_lines
from tests.conftest import UNSUBSCRIBE_SECRET

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
NIGHTJAR = [sys.executable, "-m", "pipelines.cli"]
# A run killed (SIGKILL) right after it wrote one journey's state or its ledger rows, before its
# messages left: the two are written at once by two threads (senders/dispatch.py), so the
# other is held back until the kill, and either may be in without the other.
KILLED_AFTER = """
import os, signal, sys, threading
import senders.dispatch as dispatch
from senders.ledger import Ledger
journey, first = os.environ["KILL_JOURNEY"], os.environ["KILL_AFTER"]
record_state, plan = dispatch.record_journey_state, Ledger.plan_frame
def record_state_then_die(con, campaign, day):
    if campaign.name == journey and first == "ledger":
        threading.Event().wait(60)
    written = record_state(con, campaign, day)
    if campaign.name == journey:
        os.kill(os.getpid(), signal.SIGKILL)
    return written
def plan_then_die(self, frame, day, channel, status="planned", error=None):
    ours = status == "planned" and frame.height > 0 and frame["campaign"][0] == journey
    if ours and first == "state":
        threading.Event().wait(60)
    plan(self, frame, day, channel, status, error)
    if ours:
        os.kill(os.getpid(), signal.SIGKILL)
dispatch.record_journey_state = record_state_then_die
Ledger.plan_frame = plan_then_die
from pipelines.cli import main
sys.exit(main(sys.argv[1:]))
"""


class Installation:
    def __init__(self, root: Path, source: Path, project: Path | None = None):
        self.root, self.source, self.project = root, source, project
        self.baseline_output = ""
        self.landing = root / "landing"
        self.landing.mkdir(parents=True, exist_ok=True)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NIGHTJAR_")}
        env.update(
            NIGHTJAR_LANDING=str(self.landing), NIGHTJAR_WAREHOUSE=str(self.root / "wh.duckdb"),
            NIGHTJAR_STATE=str(self.root / "state.duckdb"),
            NIGHTJAR_OUTBOX=str(self.root / "outbox"), NIGHTJAR_REPORTS=str(self.root / "rep"),
            NIGHTJAR_SETTLE_WAIT_SECONDS="0", DAGSTER_HOME="",
            NIGHTJAR_UNSUBSCRIBE_SECRET=UNSUBSCRIBE_SECRET,
        )  # fmt: skip
        if self.project:
            env["NIGHTJAR_DBT_PROJECT_DIR"] = str(self.project)
        return env

    def nightjar(self, *args: str, kill_after: tuple[str, str] | None = None):
        """`kill_after`: (journey, "state" or "ledger"), see KILLED_AFTER."""
        command, env = [*NIGHTJAR, *args], self.env()
        if kill_after:
            command = [sys.executable, "-c", KILLED_AFTER, *args]
            env["KILL_JOURNEY"], env["KILL_AFTER"] = kill_after
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)

    def night(self, day: str, *flags: str, **kwargs):
        if not (self.landing / day).exists():
            shutil.copytree(self.source / day, self.landing / day)
        return self.nightjar("run", "--date", day, *flags, **kwargs)

    def sent(self) -> collections.Counter:
        """(campaign, contact, the instance's occasion, step) -> messages in the outbox."""
        counts: collections.Counter = collections.Counter()
        for path in (self.root / "outbox").glob("*/*.jsonl"):
            for line in outbox_lines(path):
                m = json.loads(line)
                occasion = m["occasion"].rsplit("#", 1)[0] if m.get("step") else m["occasion"]
                counts[(m["campaign"], m["contact_id"], occasion, m.get("step"))] += 1
        return counts

    def instances(self, journey: str) -> list[tuple]:
        """The journey's instances in the state, as they stand (but when they were written)."""
        with duckdb.connect(str(self.root / "state.duckdb"), read_only=True) as con:
            return con.execute(
                "select * exclude (updated_at) from journey_instances where journey = ? "
                "order by all",
                [journey],
            ).fetchall()

    def copy(self, root: Path, project: Path | None = None) -> Installation:
        shutil.copytree(self.root, root)
        return Installation(root, self.source, project)


@pytest.fixture(scope="module")
def after_0306(tmp_path_factory) -> Installation:
    """A baseline on 2026-03-03, nights 03-04 .. 03-06 sent; a state export after 03-05."""
    base = tmp_path_factory.mktemp("mistakes")
    source = base / "generated"
    subprocess.run(
        [*NIGHTJAR, "generate", "--contacts", "600", "--days", "60", "--end", "2026-03-10",
         "--seed", "7", "--out", str(source)], cwd=ROOT, check=True, capture_output=True,
    )  # fmt: skip
    installation = Installation(base / "installation", source)
    for folder in sorted(source.iterdir()):
        if folder.name < "2026-03-03":
            shutil.copytree(folder, installation.landing / folder.name)
    baseline = installation.night("2026-03-03", "--baseline")
    assert baseline.returncode == 0
    installation.baseline_output = baseline.stdout
    for day in ("2026-03-04", "2026-03-05"):
        assert installation.night(day).returncode == 0
    export = installation.nightjar("state", "export", "--to", str(base / "export_0305"))
    assert export.returncode == 0, export.stderr
    assert installation.night("2026-03-06").returncode == 0
    return installation


def test_an_older_state_restored_is_refused_before_anything_is_sent_again(after_0306, tmp_path):
    installation = after_0306.copy(tmp_path / "restored")
    (installation.root / "state.duckdb").unlink()
    export = after_0306.root.parent / "export_0305"
    assert installation.nightjar("state", "import", "--from", str(export)).returncode == 0
    before = installation.sent()
    refused = installation.night("2026-03-07")
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert "state_behind" in output and "2026-03-06" in output, output[-2000:]
    assert installation.sent() == before, "nothing is sent from a state older than the landing"


def test_a_lost_state_beside_several_outbox_nights_is_named_and_a_baseline_goes_on(
    after_0306, tmp_path
):
    installation = after_0306.copy(tmp_path / "lost")
    (installation.root / "state.duckdb").unlink()
    refused = installation.night("2026-03-07")
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert "the state was lost" in output, output[-2000:]
    assert "the outbox holds messages of 3 night(s) (the last 2026-03-06)" in output
    baseline = installation.night("2026-03-07", "--baseline")
    assert baseline.returncode == 0, baseline.stdout[-2000:]


@pytest.mark.parametrize("first", ["state", "ledger"])
@pytest.mark.parametrize("journey", ["vip", "first_purchase_followup"])
def test_a_run_killed_after_the_journey_state_or_its_ledger_rows_still_sends_each_step_once(
    after_0306, tmp_path, journey, first
):
    reference = after_0306.copy(tmp_path / "reference")
    assert reference.night("2026-03-07").returncode == 0
    expected = {key for key in reference.sent() if key[0] == journey}
    assert any(key[3] for key in expected), f"{journey} sends a step on 2026-03-07"

    crashed = after_0306.copy(tmp_path / "crashed")
    killed = crashed.night("2026-03-07", kill_after=(journey, first))
    assert killed.returncode == -signal.SIGKILL
    assert crashed.night("2026-03-07").returncode == 0
    sent = crashed.sent()
    assert expected <= set(sent), sorted(expected - set(sent))
    assert max(sent.values()) == 1
    assert crashed.instances(journey) == reference.instances(journey)


def test_a_step_renamed_mid_journey_blocks_the_night_until_released(after_0306, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    models = project / "models/journeys/_journeys__models.yml"
    models.write_text(models.read_text().replace("- name: welcome_1\n", "- name: hello\n", 1))
    installation = after_0306.copy(tmp_path / "renamed", project)
    before = installation.sent()
    blocked = installation.night("2026-03-07")
    output = blocked.stdout + blocked.stderr
    assert blocked.returncode != 0
    assert "journey_steps:welcome" in output and "welcome_1" in output, output[-2000:]
    assert installation.sent() == before


def test_the_baseline_nights_step_tables_send_nothing(after_0306):
    # | step | due | sent | held out | not sent, by reason |, one row per journey step due
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in after_0306.baseline_output.splitlines()
        if line.strip().startswith("| ") and not line.strip().startswith("| step")
    ]
    steps = [row for row in rows if len(row) == 5 and row[1].isdigit()]
    assert steps, after_0306.baseline_output[-3000:]
    assert all(row[2] == "0" and "baseline" in row[4] for row in steps), steps
