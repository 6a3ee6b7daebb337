"""Campaigns declared as data: each cohort model's `meta.campaign` block in dbt YAML."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from models.dbt_vars import nearest_name, number_rule_broken
from models.experiments import METRICS, WinnerRule

NAME = re.compile(r"^[a-z][a-z0-9_]*$")
REQUIRED_KEYS = ("name", "template_id", "subject", "from_email", "occasion_column")
OPTIONAL_KEYS = (
    "from_name",
    "cooldown_days",
    "categories",
    "template_data",
    "priority",
    "holdout_share",
    "send_hour",
    "variants",
    "topic",
    "enabled",
    "winner",
)
VARIANT_KEYS = ("name", "weight", "template_id", "subject")


class CampaignConfigError(ValueError):
    """A cohort's campaign block is incomplete or malformed; names the model and the key."""


@dataclass(frozen=True)
class Variant:
    """One arm of an A/B test: its own template and subject, drawn with its weight."""

    name: str
    weight: float
    template_id: str
    subject: str


@dataclass(frozen=True)
class Step:
    """One message of a journey (models/journeys.py): sent `wait_days` after the previous
    step went; when its condition is false, its `else` step goes in its place, or none."""

    name: str
    position: int  # in the journey's sequence, from 1; an else step shares its step's
    wait_days: int
    template_id: str
    subject: str
    condition: str | None = None
    else_step: str | None = None
    template_data: tuple[str, ...] = ()
    variants: tuple[Variant, ...] = ()
    winner: WinnerRule | None = None  # when its A/B test ends (models/experiments.py)
    in_sequence: bool = True  # False for a step only ever reached as another's `else`


@dataclass(frozen=True)
class Campaign:
    name: str
    cohort: str  # the dbt model (and DuckDB table) listing the members
    template_id: str
    subject: str
    from_email: str
    occasion_column: str
    from_name: str | None = None
    cooldown_days: int = 0
    categories: tuple[str, ...] = ()
    template_data: tuple[str, ...] = ()
    cohort_description: str = ""
    priority: int = 0  # the highest priority due wins a contact's day
    holdout_share: float | None = None  # None: the dbt var holdout_share (default 0.1)
    send_hour: int | None = None  # None: the dbt var send_hour (default 10)
    variants: tuple[Variant, ...] = ()
    winner: WinnerRule | None = None  # when its A/B test ends (models/experiments.py)
    steps: tuple[Step, ...] = ()  # a journey's; a one-shot campaign has none
    journey: Any = None  # models.journeys.JourneyRules for a journey
    # What a recipient unsubscribes from (docs/contract.md §17): one SendGrid unsubscribe group
    topic: str = "promotions"
    enabled: bool = True  # false: paused, every member decided `paused`, nothing recorded

    @property
    def is_journey(self) -> bool:
        return self.journey is not None

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise CampaignConfigError(f"journey {self.name!r} has no step {name!r}")

    def template_data_of(self, step: str | None) -> tuple[str, ...]:
        return self.step(step).template_data if step else self.template_data

    def paused_reason(self, pause: Collection[str] = ()) -> str | None:
        """Why the program sends nothing tonight (its block, or this run's --pause), or None."""
        if not self.enabled:
            return "paused (enabled: false)"
        if self.name in pause:
            return "paused for this run (--pause)"
        return None

    @property
    def asset_name(self) -> str:
        return f"send_{self.name}"

    def variant(self, name: str | None, step: str | None = None) -> Variant:
        """The variant a message was assigned (the campaign, or its step, when it has none)."""
        owner = self.step(step) if step else self
        for variant in owner.variants:
            if variant.name == name:
                return variant
        if name is not None:
            raise CampaignConfigError(f"campaign {self.name!r} has no variant {name!r}")
        return Variant("", 1.0, owner.template_id, owner.subject)

    def as_dbt_var(self) -> dict[str, Any]:
        """What send_decisions needs to know of the campaign (the dbt var `campaigns`)."""
        return {
            "name": self.name,
            "cohort": self.cohort,
            "occasion_column": self.occasion_column,
            "priority": self.priority,
            "holdout_share": self.holdout_share,
            "send_hour": self.send_hour,
            "cooldown_days": self.cooldown_days,
            "variants": [{"name": v.name, "weight": v.weight} for v in self.variants],
            "topic": self.topic,
            "enabled": self.enabled,
            **(self._journey_var() if self.is_journey else {}),
        }

    def _journey_var(self) -> dict[str, Any]:
        """What journey_progress needs: the steps and the rules, for SQL."""
        rules = self.journey
        return {
            "kind": "journey",
            "exit_when": rules.exit_when,
            "exit_reason": rules.exit_reason,
            "reentry_after_days": rules.reentry_after_days,
            "newer_entry_exits": rules.newer_entry_exits,
            "countries": list(rules.countries),
            "max_late_days": rules.max_late_days,
            "lookback_days": rules.lookback_days(self.steps),
            "entry_columns": list(rules.entry_columns),
            "steps": [
                {
                    "name": s.name,
                    "position": s.position,
                    "wait_days": s.wait_days,
                    "condition": s.condition,
                    "else_step": s.else_step,
                    "in_sequence": s.in_sequence,
                    "variants": [{"name": v.name, "weight": v.weight} for v in s.variants],
                }
                for s in self.steps
            ],
        }

    def describe(self, dbt_vars: Mapping[str, Any]) -> str:
        """What a marketer needs to know, shown on the send asset, with the contact policy
        this installation applies (`dbt_vars`: models.descriptions.effective_vars)."""
        if self.is_journey:
            return self.journey.describe(self, dbt_vars)
        once = f"once per contact and {self.occasion_column}"
        cooldown = f", and not again within {self.cooldown_days} days" if self.cooldown_days else ""
        if self.variants:
            arms = ", ".join(f"{v.name} ({v.weight:g})" for v in self.variants)
            what = f"A/B test of variants {arms}"
            if self.winner:
                what += f" that {self.winner.describe()}"
        else:
            what = f'subject "{self.subject}", SendGrid template {self.template_id}'
        share = self.holdout_share if self.holdout_share is not None else dbt_vars["holdout_share"]
        hour = self.send_hour if self.send_hour is not None else dbt_vars["send_hour"]
        return (
            f"{'PAUSED (enabled: false): decided, never sent. ' if not self.enabled else ''}"
            f"Sends the '{self.name}' campaign ({what}, priority {self.priority}, topic "
            f"{self.topic}) to the members "
            f"of {self.cohort} that send_decisions picks, {once}{cooldown}. {share:.0%} of "
            f"the cohort is held out as a control group. Messages are scheduled for "
            f"{hour}:00 local time, outside the quiet hours {dbt_vars['quiet_hours_start']}:00 "
            f"to {dbt_vars['quiet_hours_end']}:00, at most {dbt_vars['max_messages_per_day']} "
            f"message(s) a day and {dbt_vars['max_messages_per_7_days']} in 7 days per contact "
            f"over all campaigns. Only the latest business date sends. "
            f"Cohort: {self.cohort_description}"
        ).strip()


def meta_block(node: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    """A model's `meta.campaign` or `meta.journey` block, if it has one."""
    meta = (node.get("config") or {}).get("meta") or node.get("meta") or {}
    return meta.get(key)


def parse_campaign(model: str, block: Mapping[str, Any], description: str = "") -> Campaign:
    where = f"dbt model {model}, meta.campaign"
    if not isinstance(block, Mapping):
        raise CampaignConfigError(f"{where}: must be a mapping of keys to values")
    check_keys(block, REQUIRED_KEYS, OPTIONAL_KEYS, where)
    for key in ("occasion_column", *block.get("template_data", ())):
        column = block["occasion_column"] if key == "occasion_column" else key
        if not NAME.match(str(column)):
            raise CampaignConfigError(f"{where}: {column!r} is not a plain column name")
    cooldown = number(block, "cooldown_days", where, int, 0, None) or 0
    share = number(block, "holdout_share", where, float, 0, 1)
    return Campaign(
        name=str(block["name"]),
        cohort=model,
        template_id=str(block["template_id"]),
        subject=str(block["subject"]),
        from_email=str(block["from_email"]),
        from_name=block.get("from_name"),
        occasion_column=str(block["occasion_column"]),
        cooldown_days=cooldown,
        categories=tuple(str(c) for c in block.get("categories", ())),
        template_data=tuple(str(c) for c in block.get("template_data", ())),
        cohort_description=" ".join(str(description).split()),
        priority=number(block, "priority", where, int, None, None) or 0,
        holdout_share=share,
        send_hour=number(block, "send_hour", where, int, 0, 23),
        variants=variants_of(block, where),
        winner=winner_rule(block, where),
        topic=word(block, "topic", where) or "promotions",
        enabled=flag(block, "enabled", where),
    )


def check_keys(
    block: Mapping[str, Any], required: tuple[str, ...], optional: tuple[str, ...], where: str
) -> None:
    """A block (a campaign's, a journey's, a step's) has its required keys, no unknown one,
    and a plain `name`."""
    missing = [key for key in required if not block.get(key)]
    if missing:
        raise CampaignConfigError(f"{where}: missing {', '.join(missing)}")
    refuse_unknown_keys(block, (*required, *optional), where)
    if not NAME.match(str(block["name"])):
        raise CampaignConfigError(f"{where}.name: use lower-case letters, digits and _")


def refuse_unknown_keys(block: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    """A misspelled key (holdout_shares) would leave the default in force without a word:
    refused, with the nearest known key."""
    unknown = sorted(set(map(str, block)) - set(known))
    if unknown:
        named = [
            f"{key} (did you mean {near}?)" if (near := nearest_name(key, known)) else key
            for key in unknown
        ]
        raise CampaignConfigError(f"{where}: unknown key(s) {', '.join(named)}")


def number(block, key, where, kind, low, high):
    """block[key] as a whole number (kind int) or a number, within [low, high]; None if unset.
    These values reach SQL, so nothing but a number gets through."""
    value = block.get(key)
    if value is None:
        return None
    rule = number_rule_broken(value, kind, low, high)
    if rule:
        raise CampaignConfigError(f"{where}.{key}: {rule}, not {value!r}")
    return kind(value)


def word(block: Mapping[str, Any], key: str, where: str) -> str | None:
    """block[key] as a plain lower-case word (it reaches SQL and SendGrid), or None."""
    value = block.get(key)
    if value is None:
        return None
    if not NAME.match(str(value)):
        raise CampaignConfigError(f"{where}.{key}: use lower-case letters, digits and _")
    return str(value)


def flag(block: Mapping[str, Any], key: str, where: str) -> bool:
    """block[key] as true or false, true when unset: `enabled: no` is YAML's false,
    `enabled: "no"` refused."""
    value = block.get(key, True)
    if not isinstance(value, bool):
        raise CampaignConfigError(f"{where}.{key}: must be true or false, not {value!r}")
    return value


def winner_rule(block: Mapping[str, Any], where: str) -> WinnerRule | None:
    """A block's `winner`: when the A/B test of its `variants` ends (models/experiments.py)."""
    value = block.get("winner")
    if value is None:
        return None
    here = f"{where}.winner"
    if not isinstance(value, Mapping):
        raise CampaignConfigError(f"{here}: a mapping of metric, min_members and probability")
    refuse_unknown_keys(value, ("metric", "min_members", "probability"), here)
    if len(block.get("variants") or ()) < 2:
        raise CampaignConfigError(f"{here}: a winner needs at least two variants to choose from")
    metric = value.get("metric", WinnerRule.metric)
    if metric not in METRICS:
        raise CampaignConfigError(f"{here}.metric: one of {', '.join(METRICS)}, not {metric!r}")
    members = number(value, "min_members", here, int, 1, None)
    probability = number(value, "probability", here, float, 0.5, 0.9999)
    return WinnerRule(
        metric=metric,
        min_members=WinnerRule.min_members if members is None else members,
        probability=WinnerRule.probability if probability is None else probability,
    )


def variants_of(block: Mapping[str, Any], where: str) -> tuple[Variant, ...]:
    entries = block.get("variants") or ()
    if not isinstance(entries, list | tuple):
        raise CampaignConfigError(f"{where}.variants: must be a list of variants")
    variants = []
    for index, entry in enumerate(entries):
        here = f"{where}.variants[{index}]"
        if not isinstance(entry, Mapping) or not entry.get("name"):
            raise CampaignConfigError(f"{here}: must be a mapping with a name")
        refuse_unknown_keys(entry, VARIANT_KEYS, here)
        if not NAME.match(str(entry["name"])):
            raise CampaignConfigError(f"{here}.name: use lower-case letters, digits and _")
        weight = number(entry, "weight", here, float, 0, None)
        if not weight:
            raise CampaignConfigError(f"{here}.weight: must be a number above 0")
        variants.append(
            Variant(
                name=str(entry["name"]),
                weight=weight,
                template_id=str(entry.get("template_id") or block["template_id"]),
                subject=str(entry.get("subject") or block["subject"]),
            )
        )
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise CampaignConfigError(f"{where}.variants: variant names must be unique")
    return tuple(variants)
