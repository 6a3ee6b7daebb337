"""Privacy and security: secrets and addresses never reach a log, an error, Dagster's records
or metadata; names are data, never code, whatever they hold."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import polars as pl
import pytest

from models.privacy import install, redact
from tests.support.corpus import CASES, good_folder
from tests.support.landing import contact, order, write_folder
from tests.support.scenario import NEXT_DAY, D, write_all
from tests.support.sendgrid_server import SendGridTestServer

API_KEY = "SG.hush-hush.0123456789abcdef"
HOSTILE = {
    "h_html": ("<script>alert('x')</script>", "{{ api_key }}"),
    "h_crlf": ("Ann\r\nBcc: evil@attacker.example", "'); DROP TABLE raw.orders; --"),
    "h_fence": ("```\n# Owned <img src=x onerror=alert(1)>", "{{#each this}}{{/each}}"),
}


def test_redact_hides_the_environments_secrets_and_masks_addresses(monkeypatch):
    monkeypatch.setenv("SENDGRID_API_KEY", API_KEY)
    monkeypatch.setenv("NIGHTJAR_ALERT_WEBHOOK_URL", "https://hooks.example.com/T000/B000/XXXX")
    text = f"auth Bearer {API_KEY} for jane.doe@example.com via https://hooks.example.com/T000/B000/XXXX"
    assert redact(text) == "auth Bearer [redacted] for j***@example.com via [redacted]"


def test_a_secret_is_redacted_as_the_environment_holds_it_at_each_line(monkeypatch, caplog):
    # the secrets are worked out again only when the environment changed: every change tells
    install()
    first, second = "first-secret-0123", "second-secret-4567"
    log = logging.getLogger("nightjar.test")
    with caplog.at_level(logging.INFO):
        log.info("before %s %s", first, second)
        monkeypatch.setenv("MAILER_TOKEN", first)  # a new secret variable
        log.info("set %s %s", first, second)
        monkeypatch.setenv("MAILER_TOKEN", second)  # the same variable, another value
        log.info("changed %s %s", first, second)
        monkeypatch.setenv("OTHER_SECRET", first)  # one more, the first value again
        log.info("both %s %s", first, second)
        monkeypatch.delenv("MAILER_TOKEN")
        monkeypatch.delenv("OTHER_SECRET")
        log.info("gone %s %s", first, second)
    assert caplog.messages == [
        f"before {first} {second}",
        f"set [redacted] {second}",
        f"changed {first} [redacted]",
        "both [redacted] [redacted]",
        f"gone {first} {second}",
    ]
    # a line without "@" may still hold an address, URL-encoded; one with neither is as is
    assert redact("GET /unsubscribe?email=jane.doe%40example.com") == (
        "GET /unsubscribe?email=j***%40example.com"
    )
    plain = "select 1 from raw.orders -- 100% done"
    assert redact(plain) == plain


def test_a_secret_set_while_the_secrets_are_worked_out_is_redacted_from_the_next_line(
    monkeypatch,
):
    # another thread sets it between the reading of the environment and the keeping of what
    # was read: the next line must still find the environment changed
    import models.privacy as privacy

    secret, found = "set-meanwhile-0123", privacy._secrets_in

    def meanwhile(variables):
        values = found(variables)
        if "MAILER_TOKEN" not in os.environ:
            monkeypatch.setenv("MAILER_TOKEN", secret)
        return values

    monkeypatch.setattr(privacy, "_secrets_in", meanwhile)
    monkeypatch.setenv("SOME_SETTING", "changed")  # so that the secrets are worked out again
    assert redact(f"now {secret}") == f"now {secret}"
    assert redact(f"then {secret}") == "then [redacted]"


def test_every_log_record_is_redacted_whoever_logs_it(monkeypatch, caplog):
    monkeypatch.setenv("SENDGRID_API_KEY", API_KEY)
    install()
    with caplog.at_level(logging.INFO):
        logging.getLogger("python_http_client").info("headers %s to %s", API_KEY, "a@b.example")
    assert caplog.messages == ["headers [redacted] to a***@b.example"]


def _hostile_landing(landing: Path) -> None:
    write_all(landing)
    stamp = "2025-11-19T08:00:00Z"
    folder = write_folder(
        landing,
        "2025-11-18",
        contacts=[
            contact(key, first_name=first, last_name=last, updated_at=stamp)
            for key, (first, last) in HOSTILE.items()
        ],
        orders=[order(f"o-{key}", key, "2025-11-10T10:00:00Z", "5000") for key in HOSTILE],
    )
    # A CSV value may not span lines (such a file is refused); a Parquet value may.
    csv_file = folder / "crm_contacts.csv"
    pl.read_csv(csv_file, infer_schema=False).write_parquet(csv_file.with_suffix(".parquet"))
    csv_file.unlink()


@pytest.fixture
def recorded(workspace, monkeypatch, tmp_path):
    """A workspace whose runs Dagster records in its own home, sending through SendGrid."""
    home = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("SENDGRID_API_KEY", API_KEY)
    with SendGridTestServer(api_key=API_KEY) as server:
        monkeypatch.setenv("SENDGRID_API_HOST", server.url)
        yield workspace, server, home


def test_names_holding_html_crlf_templates_or_sql_are_sent_as_data(recorded, capsys):
    workspace, server, _ = recorded
    _hostile_landing(workspace.landing)
    assert workspace.run(D) == 0
    assert server.rejected == []
    sent = {
        p["custom_args"]["contact_id"]: p
        for body in server.accepted
        for p in body["personalizations"]
        if p["custom_args"]["contact_id"] in HOSTILE
    }
    assert set(sent) == set(HOSTILE)  # all three are loyal customers, messaged as such
    for key, (first, last) in HOSTILE.items():
        data = sent[key]["dynamic_template_data"]
        # The template gets the name exactly as landed, as JSON data: SendGrid's
        # handlebars escapes {{first_name}}, and nothing in it is evaluated on the way.
        assert (data["first_name"], data["last_name"]) == (first, last)
        # A header cannot be split: the display name has no line break, comma or semicolon.
        name = sent[key]["to"][0]["name"]
        assert not set("\r\n,;") & set(name)
    crlf_name = sent["h_crlf"]["to"][0]["name"]
    assert crlf_name == "Ann Bcc: evil@attacker.example ') DROP TABLE raw.orders --"
    # The SQL in a name stayed a name.
    assert workspace.query("select count(*) from raw.orders where order_id like 'o-h_%'") == [(3,)]
    assert workspace.query("select first_name from customer_360 where contact_id = 'h_crlf'") == [
        (HOSTILE["h_crlf"][0],)
    ]


def test_a_preview_masks_personal_data_and_keeps_text_inside_its_code_block():
    from senders.base import Message
    from senders.messages import render_sample

    first = "````" + HOSTILE["h_fence"][0]
    preview = render_sample(
        Message("s1", "loyalty", "h1", "2025-11-20", "jane@example.com", "Jane Doe", "d-1",
                "Hi", "shop@example.com", None,
                data={"first_name": first, "spend_730d": 1234.5, "birthday_on": "2025-11-20",
                      "last_name": "Doe"})
    )  # fmt: skip
    assert "j***@example.com" in preview and "jane@example.com" not in preview
    assert "Jane" not in preview and '"last_name": "D***"' in preview
    # numbers stay, so the preview still shows the shape of what the template gets
    assert '"spend_730d": 1234.5' in preview and '"birthday_on": "2***"' in preview
    # what is left of a name cannot close the block and become markdown or HTML
    fence = preview.splitlines()[4]
    assert fence == "```json" and preview.endswith("\n```")
    assert '"first_name": "`***"' in preview


def test_no_secret_or_address_in_any_log_record_or_error(recorded, capsys, caplog):
    workspace, server, home = recorded
    _hostile_landing(workspace.landing)
    with caplog.at_level(logging.DEBUG):
        assert workspace.run(D) == 0
        # a night that fails: its error names rows, never their addresses
        (bad,) = [c for c in CASES if c.name == "orders truncated"]
        bad.breaks(good_folder(workspace.landing, NEXT_DAY))
        assert workspace.run(NEXT_DAY) == 1
        # mended, it meets SendGrid refusing a request: the answer goes to the ledger and logs
        good_folder(workspace.landing, NEXT_DAY)
        server.fail_next(400)
        assert workspace.run(NEXT_DAY) == 1
    (error,) = workspace.query(
        "select distinct error from nightjar.send_ledger where status = 'failed'"
    )
    assert error[0].startswith("SendGrid answered 400")
    addresses = {
        row[0].strip().lower()
        for row in workspace.query("select email from raw.crm_contacts where email like '%@%'")
    }
    assert len(addresses) > 400
    out = capsys.readouterr()
    seen = {
        "the terminal": out.out + out.err,
        "the log records": "\n".join(r.getMessage() for r in caplog.records),
    }
    # Everything Dagster recorded: its event log (messages, metadata, failures) and the
    # compute logs, as stored on disk.
    for path in home.rglob("*"):
        if path.is_file():
            seen[str(path)] = path.read_bytes().decode("utf-8", errors="replace")
    # Dagster did record the runs, errors included, where this test reads
    recorded = [place for place in seen if place.startswith(str(home))]
    assert any("fewer than the 400 the exporter recorded" in seen[p] for p in recorded)
    for place, text in seen.items():
        lowered = text.lower()
        assert API_KEY not in text, place
        assert [a for a in addresses if a in lowered] == [], place


def test_what_an_asset_logs_reaches_dagsters_storage_redacted(monkeypatch, tmp_path):
    from dagster import DagsterInstance, asset, materialize

    import pipelines.definitions  # noqa: F401  (installs the redaction, as every run does)

    monkeypatch.setenv("SENDGRID_API_KEY", API_KEY)

    @asset
    def careless(context) -> None:
        context.log.info(f"calling SendGrid with {API_KEY} for jane.doe@example.com")
        logging.getLogger("python_http_client").warning("Authorization: Bearer %s", API_KEY)

    home = tmp_path / "home"
    home.mkdir()
    with DagsterInstance.local_temp(str(home)) as instance:
        assert materialize([careless], instance=instance).success
    stored = "".join(
        p.read_bytes().decode("utf-8", errors="replace") for p in home.rglob("*") if p.is_file()
    )
    assert "calling SendGrid with [redacted] for j***@example.com" in stored
    assert API_KEY not in stored and "jane.doe@example.com" not in stored
