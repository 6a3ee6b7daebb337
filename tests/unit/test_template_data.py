"""What a template gets of a member's row, whatever types the warehouse hands over."""

from __future__ import annotations

import dataclasses
import json
import uuid
from decimal import Decimal

import numpy as np
import pytest

from pipelines.send_test import test_messages as send_test_messages
from senders.messages import build_message
from tests.support.decisions import NEWS

TOKEN = uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
CAMPAIGN = dataclasses.replace(NEWS, template_data=("token", "total", "ratio", "score", "items"))
MEMBER = {
    "contact_id": "c1",
    "email": "c1@example.com",
    "first_name": "Zoë",
    "last_name": "Lee",
    "nightjar_occasion": "first",
    "token": TOKEN,  # DuckDB's UUID as its Python client gives it (send-test reads so)
    "total": Decimal("NaN"),
    "ratio": np.float64("inf"),
    "score": Decimal("12.50"),
    "items": [{"name": "Blue scarf", "qty": 2}],
}


def test_every_value_is_json_and_numbers_json_cannot_spell_are_null():
    data = build_message(CAMPAIGN, MEMBER).data
    assert data == {
        "token": str(TOKEN),
        "total": None,
        "ratio": None,
        "score": 12.5,
        "items": [{"name": "Blue scarf", "qty": 2}],
    }
    assert json.loads(json.dumps(data), parse_constant=pytest.fail) == data


def test_a_masked_test_send_shows_no_text_of_the_member_not_even_inside_a_list():
    (message,) = send_test_messages(CAMPAIGN, MEMBER, "qa@shop.example", None, False, None)
    assert message.data == {
        "token": "a***",
        "total": None,
        "ratio": None,
        "score": 12.5,
        "items": [{"name": "B***", "qty": 2}],
    }
