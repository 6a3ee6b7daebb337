"""A journey's YAML block: what is refused before a night loads anything, in one line naming
the file, the journey and the key (docs/contract.md §15)."""

from __future__ import annotations

import copy

import pytest

from models.campaigns import CampaignConfigError
from models.journeys import parse_journey

WHERE = "models/journeys/_journeys__models.yml: model journey_trial"
READABLE = ("contact_id", "email", "first_name", "order_count", "email_opens")
BLOCK = {
    "name": "trial",
    "from_email": "hello@shop.example.com",
    "exit_when": "completed_orders_since_entry > 0",
    "steps": [
        {"name": "one", "template_id": "d-1", "subject": "One"},
        {
            "name": "two",
            "wait_days": 3,
            "template_id": "d-2",
            "subject": "Two",
            "condition": "not opened_last_step",
            "else": "two_b",
        },
        {"name": "two_b", "template_id": "d-3", "subject": "Two again", "condition": "true",
         "else": "two_c"},
        {"name": "two_c", "template_id": "d-4", "subject": "Two, third"},
        {"name": "three", "wait_days": 5, "template_id": "d-5", "subject": "Three"},
    ],
}  # fmt: skip


def parse(block):
    return parse_journey("journey_trial", block, where=WHERE, readable_columns=READABLE)


def changed(path, value):
    block = copy.deepcopy(BLOCK)
    target = block
    for key in path[:-1]:
        target = target[key]
    if value is None:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return block


def test_a_journey_has_its_steps_in_sequence_and_its_else_steps_in_their_place():
    journey = parse(BLOCK)
    positions = {s.name: (s.position, s.in_sequence) for s in journey.steps}
    assert positions == {
        "one": (1, True),
        "two": (2, True),
        "two_b": (2, False),
        "two_c": (2, False),
        "three": (3, True),
    }
    # the window an entry can still have a step in: every wait, plus the lateness allowed
    assert journey.journey.lookback_days(journey.steps) == 3 + 5 + 2
    assert journey.is_journey and journey.occasion_column == "occasion"
    words = journey.describe({"holdout_share": 0.1})
    assert "2. two (3 day(s) after step 1 went)" in words
    assert "3. three (5 day(s) after step 2 went)" in words
    assert "else two_b goes in its place" in words
    assert "purchased" not in words and "exit_when when completed_orders_since_entry > 0" in words


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("steps", 1, "template_id"), None, "steps[1] (two): missing template_id"),
        (("steps", 1, "wait_days"), -2, "steps[1] (two).wait_days: must be a whole number from 0"),
        (("steps", 0, "wait_days"), 1, "the first step goes the night the contact enters"),
        (
            ("steps", 1, "condition"),
            "not opened_last_stp",
            "(two).condition: unknown column 'opened_last_stp'",
        ),
        (("exit_when",), "ordr_count > 0", "exit_when: unknown column 'ordr_count'"),
        (("steps", 1, "else"), "nowhere", "else: no step named 'nowhere'"),
        (("steps", 3, "else"), "two_b", "the else steps make a cycle: two_b -> two_c -> two_b"),
        (("steps", 1, "condition"), "true; drop table x", "without ; or comments"),
        (("reentry",), "sometimes", "reentry: 'never', or after_days: N"),
        (("countries",), ["usa"], "countries: a list of ISO 3166 alpha-2 codes"),
        (("stepz",), [], "unknown key(s) stepz (did you mean steps?)"),
    ],
)
def test_a_bad_definition_is_refused_naming_the_file_the_journey_and_the_key(path, value, message):
    with pytest.raises(CampaignConfigError) as refused:
        parse(changed(path, value))
    text = str(refused.value)
    assert text.startswith(f"{WHERE}, meta.journey (journey trial)"), text
    assert message in text, text
    assert "\n" not in text


def test_two_programs_with_one_name_are_refused():
    from models.programs import campaigns_from_manifest

    def node(name, block):
        return {
            "resource_type": "model",
            "name": name,
            "patch_path": "nightjar://models/journeys/_journeys__models.yml",
            "config": {"meta": {"journey": block}},
        }

    manifest = {"nodes": {"a": node("journey_a", BLOCK), "b": node("journey_b", BLOCK)}}
    with pytest.raises(CampaignConfigError, match="the name 'trial' is declared by both"):
        campaigns_from_manifest(manifest)
