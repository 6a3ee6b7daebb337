"""Settings come from the environment and from the .env of the directory nightjar runs in."""

from __future__ import annotations

import pytest

from models.settings import load_settings


def test_a_dotenv_in_the_working_directory_is_read_and_the_environment_wins(
    workspace, tmp_path, monkeypatch
):
    monkeypatch.delenv("NIGHTJAR_LANDING")
    monkeypatch.delenv("NIGHTJAR_BASE_CURRENCY")
    (tmp_path / ".env").write_text(
        "NIGHTJAR_LANDING=from-dotenv\nNIGHTJAR_BASE_CURRENCY=eur\nNIGHTJAR_OUTBOX=ignored\n"
    )
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.landing == tmp_path / "from-dotenv"
    assert settings.base_currency == "EUR"
    assert settings.outbox == workspace.outbox  # set in the environment: it wins


def test_an_unknown_unsettled_policy_is_refused_with_its_choices(workspace, monkeypatch):
    monkeypatch.setenv("NIGHTJAR_UNSETTLED_POLICY", "retry")
    with pytest.raises(
        ValueError, match="NIGHTJAR_UNSETTLED_POLICY='retry': must be one of give_up, resend"
    ):
        load_settings()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[1, 2]", "must be a mapping"),
        ("{as_of_date: 2020-01-01}", "as_of_date is set by Nightjar itself"),
        ("{'Bad Name': 1}", "is not a dbt var name"),
        # YAML reads 21:00 as 1260 (base 60): quiet hours that would never apply
        ("{quiet_hours_start: 21:00}", "quiet_hours_start must be a whole number from 0 to 23"),
        ("{max_messages_per_7_days: messages_7d + 3}", "must be a whole number from 0"),
        ("{holdout_share: .nan}", "holdout_share must be a number from 0 to 1"),
        ('{holdout_salt: "x\'; drop"}', "holdout_salt must be a plain word"),
        # a word the SQL does not know failed the night after loading it (journey_vip)
        (
            "{vip_defined_by: predicted_cl}",
            "vip_defined_by must be one of rfm_segment, predicted_clv, not 'predicted_cl'",
        ),
        # and a segment no contact is ever in gave a VIP journey without members
        ("{vip_segment: Champion}", "vip_segment must be one of Champions, Cannot Lose Them"),
        ("{clv_monthly_discount: 2}", "clv_monthly_discount must be a number from 0 to 1"),
        ("{winback_max_p_alive: -1}", "winback_max_p_alive must be a number from 0 to 1"),
        ("{clv_min_buyers: 3}", "clv_min_buyers must be a whole number from 10"),
    ],
)
def test_dbt_vars_from_the_environment_are_plain_values_only(
    workspace, monkeypatch, value, message
):
    monkeypatch.setenv("NIGHTJAR_DBT_VARS", value)
    with pytest.raises(ValueError, match=f"NIGHTJAR_DBT_VARS: .*{message}"):
        load_settings()


def test_a_var_an_analyst_adds_to_the_project_takes_plain_values_only(
    workspace, monkeypatch, tmp_path
):
    import models.settings

    project = tmp_path / "dbt_project"
    project.mkdir()
    declared = (models.settings.DBT_PROJECT_DIR / "dbt_project.yml").read_text()
    (project / "dbt_project.yml").write_text(
        declared.replace("vars:\n", "vars:\n  vip_min_spend: 1000\n", 1)
    )
    monkeypatch.setattr(models.settings, "DBT_PROJECT_DIR", project)
    monkeypatch.setenv("NIGHTJAR_DBT_VARS", "{vip_min_spend: '0; drop table x'}")
    with pytest.raises(ValueError, match="vip_min_spend must be a number, true/false or a plain"):
        load_settings()
    monkeypatch.setenv("NIGHTJAR_DBT_VARS", "{vip_min_spend: 1500}")
    assert load_settings().dbt_vars == {"vip_min_spend": 1500}


def test_dbt_vars_from_the_environment_override_the_projects(workspace, monkeypatch):
    monkeypatch.setenv("NIGHTJAR_DBT_VARS", "{holdout_share: 0.05, quiet_hours_start: 20}")
    assert load_settings().dbt_vars == {"holdout_share": 0.05, "quiet_hours_start": 20}


def test_the_default_time_zone_must_be_a_real_one(workspace, monkeypatch):
    monkeypatch.setenv("NIGHTJAR_DEFAULT_TIMEZONE", "Europe/Pari")
    with pytest.raises(ValueError, match="not an IANA time zone name"):
        load_settings()


def test_sendgrid_groups_are_read_around_spaces_and_refused_in_one_line(workspace, monkeypatch):
    monkeypatch.setenv("NIGHTJAR_SENDGRID_GROUPS", " lifecycle = 101 ,promotions=102, ")
    assert load_settings().sendgrid_groups == {"lifecycle": 101, "promotions": 102}
    for value, rule in [
        ("Lifecycle=101", "'Lifecycle=101' is not topic=group_id"),
        ("lifecycle=abc", "'lifecycle=abc' is not topic=group_id"),
        ("lifecycle:101", "'lifecycle:101' is not topic=group_id"),
        ("lifecycle=101,promotions=101", "each topic and each group id may appear once"),
        ("lifecycle=1,lifecycle=2", "each topic and each group id may appear once"),
    ]:
        monkeypatch.setenv("NIGHTJAR_SENDGRID_GROUPS", value)
        with pytest.raises(ValueError, match=f"^NIGHTJAR_SENDGRID_GROUPS=.*{rule}") as refused:
            load_settings()
        assert "\n" not in str(refused.value)


def test_a_short_unsubscribe_secret_is_refused_without_being_quoted(workspace, monkeypatch):
    monkeypatch.setenv("NIGHTJAR_UNSUBSCRIBE_SECRET", "hunter2-too-short")
    with pytest.raises(ValueError) as refused:
        load_settings()
    assert str(refused.value).startswith("NIGHTJAR_UNSUBSCRIBE_SECRET: must be at least 32")
    assert "hunter2" not in str(refused.value)


def test_the_first_date_is_the_first_landed_folders_of_any_era(workspace, monkeypatch):
    import datetime as dt

    from models.landing import first_business_date

    # before anything has landed: the latest date that can run, not a century of dates
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    assert first_business_date(workspace.landing, None) == yesterday
    (workspace.landing / "1997-01-01").mkdir()
    (workspace.landing / "1997-01-02").mkdir()
    assert first_business_date(workspace.landing, None) == dt.date(1997, 1, 1)
    monkeypatch.setenv("NIGHTJAR_FIRST_DATE", "1899-12-31")
    with pytest.raises(ValueError, match="NIGHTJAR_FIRST_DATE='1899-12-31': must be 1900-01-01"):
        load_settings()
