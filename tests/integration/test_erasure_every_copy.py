"""Class 5, an erasure reaches every copy: after the night an erasure lands, no file Nightjar
wrote holds the erased person's address or name: not the SendGrid event files the webhook
landed (their events keep only ids, `"erased": true`), not the outbox, not a temporary file
a killed write left behind, not the reports. An event for the address arriving later is
scrubbed the next night; the suppression it carried outlives it."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from tests.integration.test_erasure import occurrences
from tests.support.landing import contact, land_events, order, write_folder
from tests.support.scenario import HISTORY, NEXT_DAY, D

ADDRESS = "philippa.quennell@example.com"
PERSONAL = (ADDRESS, "Philippa", "Quennell")
SHARED = "twins@example.com"  # twin_a is erased; twin_b, alive, holds the address too


def at(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).timestamp())


def write_history(landing: Path) -> None:
    stamp = "2025-11-19T08:00:00Z"
    write_folder(
        landing, HISTORY,
        contacts=[
            contact("c-4711", email=ADDRESS, first_name="Philippa", last_name="Quennell",
                    birth_date="1981-03-04", updated_at=stamp),
            contact("loyal", updated_at=stamp),
            contact("twin_a", email=SHARED, updated_at=stamp),
            contact("twin_b", email=SHARED, updated_at=stamp),
        ],
        orders=[
            order("o-4711", "c-4711", "2025-11-15T10:00:00Z", "3000"),
            order("o-loyal", "loyal", "2025-11-15T10:00:00Z", "2000"),
        ],
    )  # fmt: skip


def erase(landing: Path, *contact_ids: str) -> None:
    write_folder(
        landing, D,
        contacts=[contact(c, is_deleted="true", updated_at=f"{D}T07:00:00Z") for c in contact_ids],
    )  # fmt: skip


def event(name: str, who: str, email: str, when: str, **fields) -> dict:
    return {
        "event": name, "email": email, "timestamp": at(when), "sg_event_id": f"{name}-{who}-{when}",
        "contact_id": who, "campaign": "loyalty", "send_id": f"s-{who}",
        "ip": "203.0.113.7", "useragent": f"Mozilla/5.0 ({who}'s phone)", **fields,
    }  # fmt: skip


def files_holding(root: Path, *texts: str) -> list[str]:
    """Every file under `root` whose bytes hold one of `texts` (any case)."""
    return sorted(
        f"{path.relative_to(root)}: {text}"
        for path in root.rglob("*")
        if path.is_file()
        for text in texts
        if text.lower().encode() in path.read_bytes().lower()
    )


def events_in(landing: Path, day: str) -> list[dict]:
    path = landing / "sendgrid_events" / f"{day}.jsonl"
    # split at "\n" alone: events are written with ensure_ascii=False (U+2028 as it is)
    lines = path.read_text(encoding="utf-8").split("\n")
    return [json.loads(line) for line in lines if line]


@pytest.mark.slow  # a night end to end: make test-slow keeps make test within ten minutes
def test_no_file_nightjar_wrote_holds_an_erased_person_after_the_night(workspace):
    write_history(workspace.landing)
    land_events(
        workspace.landing, HISTORY,
        [event("delivered", "c-4711", ADDRESS, "2025-11-18T10:00:00+00:00"),
         event("click", "c-4711", ADDRESS, "2025-11-18T11:00:00+00:00",
               url=f"https://shop.example.com/?email={ADDRESS}"),
         event("open", "loyal", "loyal@example.com", "2025-11-18T11:00:00+00:00")],
    )  # fmt: skip
    assert workspace.run(HISTORY) == 0
    (sent,) = [m for m in workspace.outbox_lines(HISTORY, "loyalty") if m["to"] == ADDRESS]
    assert sent["to_name"] == "Philippa Quennell"
    # A send killed mid-write left its temporary file: the whole outbox file, names included.
    outbox_file = workspace.outbox / HISTORY / "loyalty.jsonl"
    killed = outbox_file.with_name(".loyalty.jsonl.k1ll3d_0.tmp")
    killed.write_bytes(outbox_file.read_bytes())
    # So did an erasure's rewrite of an event file.
    events = workspace.landing / "sendgrid_events"
    (events / f".{HISTORY}.jsonl.k1ll3d_1.tmp").write_bytes(
        (events / f"{HISTORY}.jsonl").read_bytes()
    )
    # Before the erasure lands: she unsubscribes, a bounce quotes her address, the webhook
    # crashed mid-line once, and twin_a (erased too) unsubscribes the address it shares.
    land_events(
        workspace.landing, D,
        [event("unsubscribe", "c-4711", ADDRESS, "2025-11-20T06:00:00+00:00"),
         event("bounce", "c-4711", f" {ADDRESS.upper()} ", "2025-11-20T06:10:00+00:00",
               type="bounce", reason=f"550 5.1.1 <{ADDRESS}>: Recipient address rejected"),
         event("unsubscribe", "twin_a", SHARED, "2025-11-20T06:20:00+00:00")],
    )  # fmt: skip
    with (events / f"{D}.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(f'{{"contact_id": "c-4711", "email": "{ADDRESS}", "event": "op\n')
    erase(workspace.landing, "c-4711", "twin_a")

    assert workspace.run(D) == 0

    for root in (events, workspace.outbox, workspace.root / "reports"):
        assert files_holding(root, *PERSONAL) == []
    assert list((workspace.root / "reports" / D).glob("*.png"))  # the reports were searched
    assert not killed.exists()
    assert occurrences(workspace, ADDRESS) == []
    # Her events keep their ids, nothing personal; the cut line is gone; others are intact.
    history = events_in(workspace.landing, HISTORY)
    assert [sorted(e) for e in history if e["contact_id"] == "c-4711"] == [
        ["campaign", "contact_id", "erased", "event", "send_id", "sg_event_id", "timestamp"]
    ] * 2
    assert [e["email"] for e in history if e["contact_id"] == "loyal"] == ["loyal@example.com"]
    night = events_in(workspace.landing, D)
    assert [e["event"] for e in night] == ["unsubscribe", "bounce", "unsubscribe"]
    assert night[1] == {
        "campaign": "loyalty", "contact_id": "c-4711", "erased": True, "event": "bounce",
        "send_id": "s-c-4711", "sg_event_id": "bounce-c-4711-2025-11-20T06:10:00+00:00",
        "timestamp": at("2025-11-20T06:10:00+00:00"), "type": "bounce",
    }  # fmt: skip
    # twin_a's event keeps the address twin_b holds too, nothing else personal...
    assert night[2]["email"] == SHARED and night[2]["erased"] is True and "ip" not in night[2]
    assert workspace.query("select email from suppression_list order by 1") == [(SHARED,)]
    # ...and her unsubscribe outlives her address, as its hash.
    assert workspace.query(
        "select bool_or(was_suppressed) from nightjar.erasures where contact_id = 'c-4711'"
    ) == [(True,)]

    # The rewritten files load again (their size changed): still no address, nothing lost.
    assert workspace.run(D) == 0
    assert occurrences(workspace, ADDRESS) == []
    assert workspace.query(
        "select event, email from raw.sendgrid_events where contact_id = 'c-4711' "
        "order by event_timestamp"
    ) == [("delivered", None), ("click", None), ("unsubscribe", None), ("bounce", None)]


def test_an_event_for_an_erased_address_arriving_later_is_scrubbed_the_next_night(workspace):
    write_history(workspace.landing)
    erase(workspace.landing, "c-4711")
    assert workspace.run(D) == 0

    # After the erasure night, the webhook stores her click (through an old message) and,
    # without Nightjar's custom_args, her unsubscribe from SendGrid's own preference page.
    land_events(
        workspace.landing, NEXT_DAY,
        [event("click", "c-4711", ADDRESS, "2025-11-21T09:00:00+00:00",
               url="https://shop.example.com/"),
         {"event": "group_unsubscribe", "email": ADDRESS.title(), "asm_group_id": 7,
          "sg_event_id": "g1", "timestamp": at("2025-11-21T09:05:00+00:00"),
          "ip": "203.0.113.7"},
         event("open", "loyal", "loyal@example.com", "2025-11-21T09:10:00+00:00")],
    )  # fmt: skip
    write_folder(workspace.landing, NEXT_DAY)
    assert workspace.run(NEXT_DAY) == 0

    assert files_holding(workspace.landing / "sendgrid_events", *PERSONAL) == []
    assert occurrences(workspace, ADDRESS) == []
    click, unsubscribe, other = events_in(workspace.landing, NEXT_DAY)
    assert click["erased"] and "url" not in click and "ip" not in click
    assert unsubscribe == {
        "asm_group_id": 7, "erased": True, "event": "group_unsubscribe", "sg_event_id": "g1",
        "timestamp": at("2025-11-21T09:05:00+00:00"),
    }  # fmt: skip
    assert other["email"] == "loyal@example.com" and "erased" not in other
    assert workspace.query(
        "select bool_or(was_suppressed) from nightjar.erasures where contact_id = 'c-4711'"
    ) == [(True,)]


def test_a_broken_row_is_never_printed_with_its_personal_fields(workspace, capsys, caplog):
    # An unterminated quote in the middle of the CRM file: the CSV parser's own message
    # quotes the rows after it, names, birth dates, countries and time zones included.
    person = contact("c42", first_name="Wilhelmina", last_name="Zorrostrasse",
                     birth_date="1971-03-09", timezone="Pacific/Chatham", country="NZ",
                     email="wilhelmina.z@example.com")  # fmt: skip
    folder = write_folder(workspace.landing, D, contacts=[contact("c41"), person])
    path = folder / "crm_contacts.csv"
    text = path.read_text(encoding="utf-8").replace("C41,", '"C41,', 1)
    path.write_text(text, encoding="utf-8")

    assert workspace.run(D) == 1
    printed = capsys.readouterr()
    shown = printed.out + printed.err + caplog.text
    assert "crm_contacts.csv: cannot be read as CSV" in shown
    for personal in ("Wilhelmina", "Zorrostrasse", "1971-03-09", "Pacific/Chatham",
                     "wilhelmina.z", ",NZ,"):  # fmt: skip
        assert personal not in shown


def test_an_event_line_cut_inside_a_character_never_stops_an_erasure(workspace):
    # DuckDB refuses to read such a line; the erasure then searches each file line by line.
    from assets.ingest.erasure_events import erase_in_event_files
    from assets.shared.warehouse import connect, ensure_schema
    from models.landing import EVENTS_FOLDER

    folder = workspace.landing / EVENTS_FOLDER
    folder.mkdir(parents=True)
    mine = {"event": "open", "email": "gone@example.com", "contact_id": "gone",
            "sg_event_id": "o1", "timestamp": at("2025-11-18T09:00:00+00:00"),
            "ip": "203.0.113.7"}  # fmt: skip
    cut = '{"event": "open", "email": "other@example.com", "note": "café'.encode()[:-1]
    (folder / "2025-11-18.jsonl").write_bytes(json.dumps(mine).encode() + b"\n" + cut + b"\n")
    with connect(workspace.warehouse) as con:
        ensure_schema(con)
        con.execute(
            "insert into nightjar.erasures (contact_id, email_sha256, was_suppressed, erased_at) "
            "values ('gone', sha256('gone@example.com'), false, now())"
        )
        assert erase_in_event_files(con, workspace.landing) == 1
    assert files_holding(workspace.landing, "gone@example.com", "203.0.113.7") == []
