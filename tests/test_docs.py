"""`make docs`: dbt's documentation as one page, with this installation's thresholds."""

from __future__ import annotations

from pipelines.dbt_setup import DBT_PROJECT_DIR


def test_make_docs_writes_one_page_with_the_models_and_current_thresholds(workspace, monkeypatch):
    from pipelines.cli import main

    monkeypatch.setenv("NIGHTJAR_DBT_VARS", "{loyalty_min_spend_730d: 1500}")
    assert main(["docs"]) == 0
    page = (DBT_PROJECT_DIR / "target" / "docs" / "static_index.html").read_text()
    assert "model.nightjar.campaign_outcomes" in page and "model.nightjar.cohort_loyalty" in page
    assert "who spent more than 1500 on completed orders" in page
    # no warehouse yet: dbt was given none, and made no file where Nightjar's would be
    assert not workspace.warehouse.exists()
