"""The order lines extract is optional: the same generated landing with and without
order_lines.csv gives the same customer view, cohorts, decisions and messages, but for what
the lines alone give (top category, recommendations and the follow-up's cross-sell step);
with them, no contact is recommended an SKU it had on an order line."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from pipelines.demo.sample_data import generate_landing
from senders.outbox import outbox_lines
from tests.conftest import isolate

END = dt.date(2026, 3, 31)
FROM_LINES = {"top_category", "recommended_skus"}


def night(root, mp, order_lines: bool):
    workspace = isolate(mp, root)
    mp.setenv("NIGHTJAR_DBT_VARS", "{holdout_share: 0, clv_min_buyers: 100}")
    generate_landing(
        workspace.landing, contacts=400, days=120, end=END, seed=3, order_lines=order_lines
    )
    assert workspace.run(END.isoformat()) == 0
    columns = [
        name
        for (name,) in workspace.query(
            "select column_name from information_schema.columns "
            "where table_schema = 'main' and table_name = 'customer_360' order by 1"
        )
        if name not in FROM_LINES
    ]
    view = workspace.query(f"select {', '.join(columns)} from customer_360 order by contact_id")
    decisions = workspace.query(
        "select campaign, contact_id, occasion, decision, send_at from send_decisions "
        "where step is distinct from 'cross_sell' order by all"
    )
    messages = sorted(
        (path.name, line)
        for path in (workspace.outbox / END.isoformat()).glob("*.jsonl")
        for line in outbox_lines(path)
        if '"step": "cross_sell"' not in line
    )
    return workspace, view, decisions, messages


@pytest.mark.slow  # two landings of four months: about a minute
def test_a_landing_without_lines_gives_the_same_night_but_for_what_lines_give(tmp_path):
    with pytest.MonkeyPatch.context() as mp:
        without = night(tmp_path / "without", mp, order_lines=False)
    with pytest.MonkeyPatch.context() as mp:
        with_lines = night(tmp_path / "with", mp, order_lines=True)
    _, view, decisions, messages = without
    workspace, view_with, decisions_with, messages_with = with_lines
    assert view_with == view and len(view) > 300
    assert decisions_with == decisions and messages_with == messages and messages
    # without lines there is nothing to recommend; with them most buyers get five
    assert without[0].query("select count(recommended_skus) from customer_360") == [(0,)]
    recommended = workspace.query(
        "select count(*) filter (where len(recommended_skus) = 5), "
        "count(*) filter (where order_count > 0) from customer_360"
    )[0]
    assert recommended[0] > 0.8 * recommended[1]

    # never an SKU the contact had on a line of any status, as the landed files say
    had = (
        pl.concat(
            pl.read_csv(p, infer_schema=False).select("order_id", "sku")
            for p in workspace.landing.glob("*/order_lines.csv")
        )
        .join(
            pl.concat(
                pl.read_csv(p, infer_schema=False).select("order_id", "contact_id")
                for p in workspace.landing.glob("*/orders.csv")
            ).unique(),
            on="order_id",
        )
        .select("contact_id", "sku")
        .unique()
    )
    pitched = pl.DataFrame(
        workspace.query(
            "select contact_id, unnest(recommended_skus) from customer_360 "
            "where recommended_skus is not null"
        ),
        schema=["contact_id", "sku"],
        orient="row",
    )
    assert pitched.height > 500
    assert pitched.join(had, on=["contact_id", "sku"]).height == 0
