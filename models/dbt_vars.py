"""The dbt vars an installation may set (NIGHTJAR_DBT_VARS), checked before they reach SQL,
and the nearest-name suggestion every misspelled name gets."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable

import yaml

# dbt vars Nightjar sets itself each run; NIGHTJAR_DBT_VARS may not override them.
VARS_NIGHTJAR_SETS = (
    "as_of_date",
    "campaigns",
    "send_after",
    "default_timezone",
    "incremental_since",
    "paused",
    "sendgrid_groups",
)
_VAR_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# The project's own vars, with what each must be: (kind, lowest, highest). A value out of
# range would not fail loudly in SQL: quiet hours of 1260 simply never apply.
KNOWN_DBT_VARS: dict[str, tuple[type, float | None, float | None]] = {
    "spend_window_days": (int, 1, None),
    "web_page_view_window_days": (int, 1, None),
    "cart_window_days": (int, 1, None),
    "loyalty_max_days_since_purchase": (int, 0, None),
    "loyalty_min_spend_730d": (float, 0, None),
    "reactivation_min_days_since_purchase": (int, 0, None),
    "birthday_offset_days": (int, -366, 366),
    "followup_days_after_first_order": (int, 0, 3650),
    "cart_max_skus": (int, 1, 100),
    "vip_segment": (str, None, None),
    "vip_defined_by": (str, None, None),
    "winback_max_p_alive": (float, 0, 1),
    "clv_window_days": (int, 30, None),
    "clv_min_buyers": (int, 10, None),
    "clv_monthly_discount": (float, 0, 1),
    "max_messages_per_day": (int, 0, None),
    "max_messages_per_7_days": (int, 0, None),
    "holdout_share": (float, 0, 1),
    "holdout_salt": (str, None, None),
    "global_control_share": (float, 0, 1),
    "send_hour": (int, 0, 23),
    "quiet_hours_start": (int, 0, 23),
    "quiet_hours_end": (int, 0, 23),
    "conversion_window_days": (int, 1, None),
    "results_window_days": (int, 1, None),
    "reputation_window_days": (int, 1, 90),
}
_SAFE_TEXT = re.compile(r"^[A-Za-z0-9_.:+/ -]*$")
# Words whose vars the SQL compares with fixed names: another word fails the night in dbt
# (journey_vip's compile error) or matches no one (a segment spelled `Champion`).
RFM_SEGMENTS = (
    "Champions", "Cannot Lose Them", "At Risk", "Loyal Customers", "Potential Loyalists",
    "New Customers", "Promising", "Need Attention", "About to Sleep", "Hibernating", "Lost",
    "No Recent Purchase", "Never Purchased",
)  # fmt: skip
# (the names int_contacts_rfm_scored and customer_360 give)
VAR_WORDS: dict[str, tuple[str, ...]] = {
    "vip_defined_by": ("rfm_segment", "predicted_clv"),
    "vip_segment": RFM_SEGMENTS,
}


def parse_dbt_vars(text: str, declared: Callable[[], Iterable[str]]) -> dict:
    """NIGHTJAR_DBT_VARS: a YAML (or JSON) mapping of dbt var names to plain values. The
    values end up in SQL, so only numbers, booleans and short plain words are accepted.
    `declared` gives the vars the project declares, read only for a var not of Nightjar's
    own. A refusal does not name the variable: models/settings.py does."""
    if not text.strip():
        return {}
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValueError(f"not a YAML mapping ({error.problem})") from None
    if not isinstance(values, dict):
        raise ValueError("must be a mapping such as {holdout_share: 0.05}")
    for key, value in values.items():
        if not isinstance(key, str) or not _VAR_NAME.match(key):
            raise ValueError(f"{key!r} is not a dbt var name")
        if key in VARS_NIGHTJAR_SETS:
            raise ValueError(f"{key} is set by Nightjar itself")
        if key in KNOWN_DBT_VARS:
            check_dbt_var(key, value)
            if KNOWN_DBT_VARS[key][0] is int:
                values[key] = int(value)  # 22.0 is 22: a whole hour, not "22.0:00"
            continue
        _require_declared(key, set(declared()) - set(VARS_NIGHTJAR_SETS))
        plain = isinstance(value, bool) or _finite_number(value) or _plain_word(value)
        if not plain:
            raise ValueError(f"{key} must be a number, true/false or a plain word, not {value!r}")
    return values


def _require_declared(key: str, declared: set[str]) -> None:
    """A var the project does not declare changes nothing: dbt ignores it, so a misspelled
    threshold (loyalty_min_spend) would leave the default in force without a word."""
    if key not in declared:
        raise ValueError(
            f"{key} is not a var of this project"
            + (did_you_mean(key, declared) or " (see dbt_project.yml)")
        )


def check_dbt_var(key: str, value) -> None:
    """A value for one of the project's own vars, of the right kind and in range."""
    kind, low, high = KNOWN_DBT_VARS[key]
    if kind is str:
        if not _plain_word(value):
            raise ValueError(f"{key} must be a plain word, not {value!r}")
        if key in VAR_WORDS and value not in VAR_WORDS[key]:
            raise ValueError(f"{key} must be one of {', '.join(VAR_WORDS[key])}, not {value!r}")
        return
    rule = number_rule_broken(value, kind, low, high)
    if rule:
        raise ValueError(f"{key} {rule}, not {value!r}")


def number_rule_broken(value, kind: type, low, high) -> str | None:
    """The rule `value` breaks ("must be a whole number from 0 to 23"), or None: a finite
    number (whole when kind is int) within [low, high]. Such values reach SQL."""
    ok = _finite_number(value) and (kind is float or value == int(value))
    if ok and (low is None or value >= low) and (high is None or value <= high):
        return None
    noun = "a whole number" if kind is int else "a number"
    bounds = "" if low is None else f" from {low}" + ("" if high is None else f" to {high}")
    return f"must be {noun}{bounds}"


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """The suggestion for a misspelled name ("; did you mean X?"), or "" when none is near."""
    nearest = nearest_name(name, known)
    return f"; did you mean {nearest}?" if nearest else ""


def nearest_name(name: str, known: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(name, sorted(known), n=1)
    return matches[0] if matches else None


def _finite_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _plain_word(value) -> bool:
    return isinstance(value, str) and len(value) <= 64 and bool(_SAFE_TEXT.match(value))
