"""`make docs`: dbt's documentation as one page, with this installation's thresholds."""

from __future__ import annotations

from models.settings import DBT_PROJECT_DIR


def test_make_docs_writes_one_page_with_the_models_and_current_thresholds(workspace, monkeypatch):
    from pipelines.cli import main

    monkeypatch.setenv("NIGHTJAR_DBT_VARS", "{loyalty_min_spend_730d: 1500}")
    assert main(["docs"]) == 0
    page = (DBT_PROJECT_DIR / "target" / "docs" / "static_index.html").read_text()
    assert "model.nightjar.campaign_outcomes" in page and "model.nightjar.cohort_loyalty" in page
    assert "who spent more than 1500 on completed orders" in page
    # no warehouse yet: dbt was given none, and made no file where Nightjar's would be
    assert not workspace.warehouse.exists()


def test_the_docs_take_column_types_from_a_copy_of_the_warehouse(workspace):
    import json

    import duckdb

    from pipelines.cli import main

    with duckdb.connect(str(workspace.warehouse)) as con:
        con.execute("create schema build")
        con.execute("create table build.cohort_loyalty (contact_id varchar, spend decimal(18, 2))")
    before = workspace.warehouse.stat().st_mtime_ns
    assert main(["docs"]) == 0
    catalog = json.loads((DBT_PROJECT_DIR / "target" / "docs" / "catalog.json").read_text())
    columns = catalog["nodes"]["model.nightjar.cohort_loyalty"]["columns"]
    assert columns["spend"]["type"] == "DECIMAL(18,2)"
    assert workspace.warehouse.stat().st_mtime_ns == before  # dbt never opened the real one
