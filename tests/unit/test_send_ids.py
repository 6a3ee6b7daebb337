"""A message's send_id is the ledger's key: it may never change spelling between releases,
or tonight's run would see last night's messages as unsent."""

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from senders.ledger import _SEND_ID_NAMESPACE, send_id


@pytest.mark.parametrize(
    ("campaign", "contact_id", "occasion"),
    [
        ("loyalty", "C0000001", "2025-11-16"),
        ("welcome_series", "c" * 255, "once#welcome_2"),
        ("birthday", "Zoë-ß-東京-🎂", "1990-02-29"),
        ("", "", ""),
        ("a\x1fb", "\x00", "\n"),
    ],
)
def test_a_send_id_is_the_uuid5_of_campaign_contact_and_occasion(campaign, contact_id, occasion):
    expected = uuid.uuid5(_SEND_ID_NAMESPACE, f"{campaign}\x1f{contact_id}\x1f{occasion}")
    assert send_id(campaign, contact_id, occasion) == str(expected)


def test_a_send_id_is_spelled_as_earlier_releases_wrote_it():
    assert send_id("loyalty", "C0000001", "2025-11-16") == "23353306-3021-542a-9c37-cb689fbe8ed3"


@given(st.text(), st.text(), st.text())
def test_any_text_gives_the_uuid5(campaign, contact_id, occasion):
    expected = uuid.uuid5(_SEND_ID_NAMESPACE, f"{campaign}\x1f{contact_id}\x1f{occasion}")
    assert send_id(campaign, contact_id, occasion) == str(expected)
