"""Every case of the corpus of broken extracts gives its expected outcome
(tests/support/corpus.py)."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from models.extract_files import load_extract
from models.extracts import EXTRACTS, ExtractError
from models.landing import LandingFolder
from tests.support.corpus import CASES, DAY, ROWS, Fail, good_folder


def test_the_corpus_has_at_least_thirty_cases_across_every_extract():
    assert len(CASES) >= 30
    assert {case.extract for case in CASES} == set(EXTRACTS)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_broken_extract_gives_its_outcome(tmp_path, case):
    folder = good_folder(tmp_path)
    case.breaks(folder)
    landing_folder = LandingFolder(dt.date.fromisoformat(DAY), folder)

    def load():
        return load_extract(
            [landing_folder],
            EXTRACTS[case.extract],
            "USD",
            crm_snapshot=case.crm_export == "snapshot",
        )

    if isinstance(case.outcome, Fail):
        with pytest.raises(ExtractError) as error:
            load()
        assert re.search(case.outcome.pattern, str(error.value), re.S), str(error.value)
        assert "@example.com" not in str(error.value).replace("***@example.com", "")
        return
    checked = load()
    quarantine = checked.quarantine
    left_out = quarantine.filter(quarantine["action"] == "row_quarantined")
    assert left_out.select("source_row").n_unique() == case.outcome.rows
    assert (quarantine["action"] == "value_removed").sum() == case.outcome.values
    # Loaded + quarantined rows = rows read; every quarantine row names file, row, rule.
    read = 0 if case.name in ("crm no changes today", "lines absent") else ROWS
    assert checked.frame.height + case.outcome.rows == read
    assert quarantine["source_file"].str.ends_with(f"{case.extract}.csv").all()
    assert (quarantine["rule"].str.len_chars() > 0).all()
    assert (quarantine["business_date"] == dt.date.fromisoformat(DAY)).all()
