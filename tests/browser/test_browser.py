"""The Dagster UI as a marketer sees it, in a real browser.

A small demo (two business dates) is materialized into a Dagster instance of its own; the
Dagster webserver serves it on loopback; headless Chromium (Debian's `chromium`, driven by
Playwright) reads the lineage, a cohort and a campaign's results. Screenshots are kept in
tests/artifacts/browser/. Dagster's GraphQL API is checked beside it, not instead of it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import duckdb
import pytest

from pipelines.run import project_settings

# Its own make target (make test-browser, run by .ci/run): a demo's two nights, a webserver
# and Chromium take a worker for over a minute, which make test's budget cannot spare.
pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts" / "browser"
CHROMIUM = os.environ.get("NIGHTJAR_CHROMIUM", "/usr/bin/chromium")
# As root and on a closed network: no sandbox, and none of Chromium's calls home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
GROUPS = ["ingest", "warehouse", "cohorts", "journeys", "sends", "results"]
END = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.fixture(scope="module")
def dagster_ui(tmp_path_factory):
    """A materialized two-night demo and the webserver showing it: (base URL, env)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium), "
            "as .ci/run does, or point NIGHTJAR_CHROMIUM at a Chromium"
        )
    root = tmp_path_factory.mktemp("ui")
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(project_settings())  # as `make dev` writes it
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("NIGHTJAR_", "SENDGRID_"))},
        "DAGSTER_HOME": str(home),
        "NIGHTJAR_LANDING": str(root / "landing"),
        "NIGHTJAR_WAREHOUSE": str(root / "warehouse.duckdb"),
        "NIGHTJAR_OUTBOX": str(root / "outbox"),
        "NIGHTJAR_REPORTS": str(root / "reports"),
    }
    bin_dir = Path(sys.executable).parent
    demo = subprocess.run(
        [str(bin_dir / "nightjar"), "demo", "--end", END.isoformat()],  # what `make demo` runs
        cwd=root, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with (root / "webserver.log").open("w") as log:
        server = subprocess.Popen(
            [str(bin_dir / "dagster-webserver"), "-w", str(REPO / "workspace.yaml"),
             "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its code server goes down with it
        )  # fmt: skip
        try:
            _wait_for(f"{base}/server_info", 180)
            yield base, env, root
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)


def _graphql(base: str, query: str) -> dict:
    request = urllib.request.Request(
        f"{base}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    # the code location may still be loading when the server first answers
    deadline = time.monotonic() + 120
    while True:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.load(response)
        if answer.get("data", {}).get("assetNodes") or time.monotonic() > deadline:
            return answer["data"]
        time.sleep(1)


def test_graphql_shows_groups_kinds_owners_and_the_results(dagster_ui):
    base, *_ = dagster_ui
    data = _graphql(
        base,
        """{ assetNodes { assetKey { path } groupName kinds description
             owners { ... on TeamAssetOwner { team } } } }""",
    )
    nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
    assert {n["groupName"] for n in nodes.values()} == set(GROUPS)
    assert {"polars", "pandera", "duckdb"} <= set(nodes["raw/orders"]["kinds"])
    assert "dbt" in nodes["customer_360"]["kinds"]
    assert "sendgrid" in nodes["send_loyalty"]["kinds"]
    assert nodes["results_loyalty"]["groupName"] == "results"
    assert {o["team"] for o in nodes["send_loyalty"]["owners"]} == {"marketing"}
    assert "less than 90 days old" in nodes["cohort_loyalty"]["description"]


@pytest.fixture(scope="module")
def browser_page(dagster_ui):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1800, "height": 1200})
        page.set_default_timeout(60_000)
        yield page
        browser.close()


def _open(page, url: str) -> None:
    page.goto(url)
    page.wait_for_load_state("networkidle")
    skip = page.get_by_role("button", name="Skip")  # Dagster's one-time newsletter prompt
    if skip.count():
        skip.click()


def _on_screen(page, *texts: str, seconds: float = 60) -> None:
    """Wait until the page shows every text as a line of its own (rendered, not only somewhere
    in the DOM); on timeout, keep a screenshot and say what is missing."""
    deadline = time.monotonic() + seconds
    while True:
        lines = set(page.evaluate("document.body.innerText").splitlines())
        missing = [t for t in texts if t not in lines]
        if not missing:
            return
        if time.monotonic() > deadline:
            shot = _shot(page, "failed_" + missing[0].replace("/", "_"), full_page=True)
            raise AssertionError(f"not on screen at {page.url}: {missing} (see {shot})")
        page.wait_for_timeout(500)


def _settled(page) -> None:
    """Dagster fills in each group's materialization status after drawing the graph."""
    deadline = time.monotonic() + 60
    while "fetching statuses" in page.evaluate("document.body.innerText"):
        assert time.monotonic() < deadline, "the graph's statuses never loaded"
        page.wait_for_timeout(500)
    page.wait_for_load_state("networkidle")


def _shot(page, name: str, full_page: bool = False) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    print(f"screenshot: {path}")
    return path


def test_the_lineage_shows_the_groups_in_order_from_extracts_to_results(dagster_ui, browser_page):
    base, *_ = dagster_ui
    page = browser_page
    _open(page, f"{base}/asset-groups")
    _on_screen(page, *GROUPS)
    # collapsed, the groups line up left to right in the order the data flows
    boxes = {g: page.get_by_text(g, exact=True).last.bounding_box() for g in GROUPS}
    lefts = [boxes[g]["x"] for g in GROUPS]
    assert lefts == sorted(lefts), boxes
    _settled(page)
    _shot(page, "1_groups")
    # everything upstream of one campaign's results: from the three extracts on
    # every depth (the page shows the nearest only), zoomed to fit on a wide screen
    page.set_viewport_size({"width": 2400, "height": 1300})
    _open(page, f"{base}/assets/results_loyalty?view=lineage&lineageScope=upstream&lineageDepth=99")
    _on_screen(page, "crm_contacts", "orders", "web_events", "customer_360", "cohort_loyalty",
               "send_loyalty", "campaign_outcomes", "results_loyalty")  # fmt: skip
    _settled(page)
    _shot(page, "2_lineage_extracts_to_results")
    page.set_viewport_size({"width": 1800, "height": 1200})


def test_a_cohort_shows_its_rule_and_its_size_plotted_over_both_nights(dagster_ui, browser_page):
    base, env, _ = dagster_ui
    page = browser_page
    with duckdb.connect(env["NIGHTJAR_WAREHOUSE"], read_only=True) as con:
        size = con.execute("select count(*) from main.cohort_loyalty").fetchall()[0][0]
    assert size > 0
    page.set_viewport_size({"width": 1800, "height": 2000})  # rule, size and plots at once
    _open(page, f"{base}/assets/cohort_loyalty")
    page.get_by_text(
        "Loyalty: contacts whose last completed purchase is less than 90 days"
    ).wait_for()
    # the night's figures lead its metadata, in words
    row = page.locator("tr", has=page.get_by_text("cohort size", exact=True)).first
    assert str(size) in row.inner_text()
    page.get_by_role("button", name="Plots").click()
    plot = page.get_by_text("cohort size", exact=True).first
    plot.wait_for()
    plot.scroll_into_view_if_needed()
    # both nights' partitions are on the plot's axis
    section = plot.locator("xpath=../..")
    assert section.locator("canvas").count() >= 1
    _shot(page, "3_cohort_loyalty_size")


def test_the_results_show_lift_against_the_holdout_with_its_interval(dagster_ui, browser_page):
    base, _, root = dagster_ui
    page = browser_page
    page.set_viewport_size({"width": 1800, "height": 2000})
    _open(page, f"{base}/assets/results_loyalty")
    _on_screen(page, "summary", "lift_pp", "lift_ci_low_pp", "lift_ci_high_pp", "held_out")
    text = page.evaluate("document.body.innerText")
    assert "vs holdout" in text and "95% CI" in text, text[:2000]
    _shot(page, "4_results_loyalty")
    # the chart, attached to the materialization, opens from its metadata row
    row = page.locator("tr", has=page.get_by_text("chart", exact=True))
    row.get_by_text("[Show Markdown]").click()
    image = page.locator("img[src^='data:image/png']")
    image.wait_for()
    assert image.evaluate("i => i.complete && i.naturalWidth") == 900  # drawn, not blocked
    page.wait_for_timeout(1000)  # the dialog fades in
    _shot(page, "5_results_loyalty_chart")
    chart = root / "reports" / END.isoformat() / "results_loyalty.png"
    assert chart.read_bytes()[:4] == b"\x89PNG"
