"""Journeys declared as data: an entry model's `meta.journey` block in dbt YAML, its steps
with their waits, conditions and `else` steps (docs/contract.md §15).

A journey runs through the same sending machinery as a one-shot campaign: parsed here into a
Campaign whose `steps` and `journey` rules are set. Everything an analyst can get wrong is
refused here, before a night loads anything, naming the YAML file, the journey and the key."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import duckdb

from models.campaigns import (
    NAME,
    Campaign,
    CampaignConfigError,
    Step,
    check_keys,
    flag,
    number,
    variants_of,
    winner_rule,
    word,
)

JOURNEY_REQUIRED = ("name", "from_email", "steps")
JOURNEY_OPTIONAL = (
    "from_name",
    "topic",
    "categories",
    "priority",
    "holdout_share",
    "send_hour",
    "exit_when",
    "exit_reason",
    "reentry",
    "newer_entry_exits",
    "countries",
    "max_late_days",
    "enabled",
)
STEP_REQUIRED = ("name", "template_id", "subject")
STEP_OPTIONAL = ("wait_days", "condition", "else", "template_data", "variants", "winner")
DEFAULT_MAX_LATE_DAYS = 2
# What a condition or exit_when may read besides customer_360's columns: the instance's state
# (models/journeys SQL: journey_progress.sql computes each of them).
STATE_COLUMNS = (
    "journey",
    "occasion",
    "entered_on",
    "entered_at",
    "days_since_entry",
    "steps_sent",
    "last_step",
    "last_step_on",
    "opened_last_step",
    "clicked_last_step",
    "completed_orders_since_entry",
    "spend_since_entry",
    "last_web_purchase_at",
)
_COUNTRY = re.compile(r"^[A-Z]{2}$")


@dataclass(frozen=True)
class JourneyRules:
    """What makes a campaign a journey: how instances enter, exit and run late."""

    exit_when: str | None = None
    exit_reason: str = "exit_when"
    reentry_after_days: int | None = 0  # None: never again; N: not within N days of an entry
    newer_entry_exits: str | None = None  # the reason a newer occasion ends an older one
    countries: tuple[str, ...] = ()
    max_late_days: int = DEFAULT_MAX_LATE_DAYS
    records_membership: bool = False  # the entry model reads its own previous nights
    entry_columns: tuple[str, ...] = ()  # the entry model's columns the templates use

    def lookback_days(self, steps: Iterable[Step]) -> int:
        """How far back an entry can lie and still have a step to send: every wait, plus
        the lateness allowed."""
        return sum(s.wait_days for s in steps if s.in_sequence) + self.max_late_days

    def describe(self, journey: Any, dbt_vars: Mapping[str, Any]) -> str:
        """The journey in a marketer's words: who enters, each step with its wait and
        condition, when an instance ends, and the contact policy it is sent under."""
        steps = []
        for step in (s for s in journey.steps if s.in_sequence):
            when = (
                "the night the contact enters"
                if step.position == 1
                else f"{step.wait_days} day(s) after step {step.position - 1} went"
            )
            text = f'{step.position}. {step.name} ({when}): "{step.subject}"'
            if step.condition:
                otherwise = (
                    f"else {step.else_step} goes in its place" if step.else_step else "else skipped"
                )
                text += f" if {step.condition}, {otherwise}"
            steps.append(text)
        exits = [f"{self.exit_reason} when {self.exit_when}"] if self.exit_when else []
        if self.newer_entry_exits:
            exits.append(f"{self.newer_entry_exits} when a newer occasion enters")
        reentry = (
            "never re-enters"
            if self.reentry_after_days is None
            else f"may enter again {self.reentry_after_days} days after its previous entry"
        )
        share = (
            journey.holdout_share
            if journey.holdout_share is not None
            else dbt_vars["holdout_share"]
        )
        place = f" Only contacts in {', '.join(self.countries)}." if self.countries else ""
        return (
            f"{'PAUSED (enabled: false): decided, never sent. ' if not journey.enabled else ''}"
            f"Journey '{journey.name}' (priority {journey.priority}, topic {journey.topic}): "
            f"{journey.cohort_description} Steps: {'; '.join(steps)}. Ends: "
            f"{'; '.join(exits) or 'after its last step'}, checked every night before any "
            f"step. A contact {reentry}.{place} {share:.0%} of the entrants are drawn at entry "
            f"into the control group and held out of every step. A step more than "
            f"{self.max_late_days} day(s) overdue is skipped (too_late). Every step is decided "
            f"by send_decisions under the contact policy; one held back by the cap or a "
            f"higher priority goes the next night it can."
        )


def where_of(model: str, node: Mapping[str, Any]) -> str:
    """The YAML file and model a block is in, as an error names them."""
    path = str(node.get("patch_path") or node.get("original_file_path") or "")
    path = path.split("://", 1)[-1]
    return f"{path}: model {model}" if path else f"dbt model {model}"


def parse_journey(
    model: str,
    block: Mapping[str, Any],
    description: str = "",
    where: str | None = None,
    readable_columns: Iterable[str] | None = None,
    records_membership: bool = False,
) -> Campaign:
    """The journey a `meta.journey` block declares, or CampaignConfigError naming the file,
    the journey and the key. `readable_columns`: what conditions may read besides the state
    (customer_360's columns); None skips that check."""
    where = f"{where or f'dbt model {model}'}, meta.journey"
    if not isinstance(block, Mapping):
        raise CampaignConfigError(f"{where}: must be a mapping of keys to values")
    if block.get("name"):
        where = f"{where} (journey {block['name']})"
    check_keys(block, JOURNEY_REQUIRED, JOURNEY_OPTIONAL, where)
    steps = _steps(block, where)
    rules = JourneyRules(
        exit_when=_sql(block, "exit_when", where),
        exit_reason=word(block, "exit_reason", where) or "exit_when",
        reentry_after_days=_reentry(block.get("reentry"), where),
        newer_entry_exits=word(block, "newer_entry_exits", where),
        countries=_countries(block.get("countries"), where),
        max_late_days=number(block, "max_late_days", where, int, 0, 366)
        if block.get("max_late_days") is not None
        else DEFAULT_MAX_LATE_DAYS,
        records_membership=records_membership,
        entry_columns=_entry_columns(steps, readable_columns),
    )
    if readable_columns is not None:
        readable = (*readable_columns, *STATE_COLUMNS)
        if rules.exit_when:
            check_sql_columns(rules.exit_when, readable, f"{where}.exit_when")
        for step in steps:
            if step.condition:
                index = [s["name"] for s in block["steps"]].index(step.name)
                here = f"{where}.steps[{index}] ({step.name}).condition"
                check_sql_columns(step.condition, readable, here)
    first = steps[0]
    return Campaign(
        name=str(block["name"]),
        cohort=model,
        template_id=first.template_id,
        subject=first.subject,
        from_email=str(block["from_email"]),
        from_name=block.get("from_name"),
        occasion_column="occasion",
        categories=tuple(str(c) for c in block.get("categories", ())),
        template_data=first.template_data,
        cohort_description=" ".join(str(description).split()),
        priority=number(block, "priority", where, int, None, None) or 0,
        holdout_share=number(block, "holdout_share", where, float, 0, 1),
        send_hour=number(block, "send_hour", where, int, 0, 23),
        steps=steps,
        journey=rules,
        topic=word(block, "topic", where) or "lifecycle",
        enabled=flag(block, "enabled", where),
    )


def _steps(block: Mapping[str, Any], where: str) -> tuple[Step, ...]:
    entries = block["steps"]
    if not isinstance(entries, list | tuple) or not entries:
        raise CampaignConfigError(f"{where}.steps: must be a list of steps")
    parsed: list[dict[str, Any]] = []
    for index, entry in enumerate(entries):
        here = f"{where}.steps[{index}]"
        if not isinstance(entry, Mapping):
            raise CampaignConfigError(f"{here}: must be a mapping of keys to values")
        if entry.get("name"):
            here = f"{where}.steps[{index}] ({entry['name']})"
        check_keys(entry, STEP_REQUIRED, STEP_OPTIONAL, here)
        template_data = tuple(str(c) for c in entry.get("template_data", ()))
        for column in template_data:
            if not NAME.match(column):
                raise CampaignConfigError(f"{here}.template_data: {column!r} is not a plain name")
        parsed.append(
            {
                "name": str(entry["name"]),
                "template_id": str(entry["template_id"]),
                "subject": str(entry["subject"]),
                "wait_days": number(entry, "wait_days", here, int, 0, 3660) or 0,
                "condition": _sql(entry, "condition", here),
                "else_step": str(entry["else"]) if entry.get("else") else None,
                "template_data": template_data,
                "variants": variants_of(entry, here),
                "winner": winner_rule(entry, here),
                "where": here,
            }
        )
    names = [s["name"] for s in parsed]
    for name in {n for n in names if names.count(n) > 1}:
        raise CampaignConfigError(f"{where}.steps: two steps are named {name!r}")
    targets = {s["else_step"] for s in parsed if s["else_step"]}
    for step in parsed:
        if step["else_step"] and step["else_step"] not in names:
            raise CampaignConfigError(
                f"{step['where']}.else: no step named {step['else_step']!r} in this journey"
            )
    _refuse_else_cycles(parsed, where)
    sequence = [s for s in parsed if s["name"] not in targets]
    if not sequence:
        raise CampaignConfigError(f"{where}.steps: every step is another's else step")
    if sequence[0]["wait_days"]:
        raise CampaignConfigError(
            f"{sequence[0]['where']}.wait_days: the first step goes the night the contact "
            f"enters: 0, not {sequence[0]['wait_days']}"
        )
    position = {s["name"]: i + 1 for i, s in enumerate(sequence)}
    # an else step takes the place (and the wait) of the step that names it
    for step in parsed:
        if step["else_step"] and step["name"] in position:
            _place_else(step, parsed, position)
    return tuple(
        Step(
            name=s["name"],
            position=position[s["name"]],
            wait_days=s["wait_days"],
            template_id=s["template_id"],
            subject=s["subject"],
            condition=s["condition"],
            else_step=s["else_step"],
            template_data=s["template_data"],
            variants=s["variants"],
            winner=s["winner"],
            in_sequence=s["name"] not in targets,
        )
        for s in parsed
        if s["name"] in position
    )


def _entry_columns(steps: Iterable[Step], readable: Iterable[str] | None) -> tuple[str, ...]:
    """The template columns neither customer_360 nor the state has: the entry model's."""
    known = {*(readable or ()), *STATE_COLUMNS}
    used = (column for step in steps for column in step.template_data)
    return tuple(dict.fromkeys(c for c in used if c not in known))


def _place_else(step: dict, parsed: list[dict], position: dict[str, int]) -> None:
    by_name = {s["name"]: s for s in parsed}
    current = step
    while current["else_step"] and current["else_step"] not in position:
        target = by_name[current["else_step"]]
        position[target["name"]] = position[step["name"]]
        current = target


def _refuse_else_cycles(parsed: list[dict], where: str) -> None:
    by_name = {s["name"]: s for s in parsed}
    for start in parsed:
        seen = [start["name"]]
        current = start
        while current["else_step"]:
            current = by_name[current["else_step"]]
            if current["name"] in seen:
                cycle = " -> ".join([*seen[seen.index(current["name"]) :], current["name"]])
                raise CampaignConfigError(f"{where}.steps: the else steps make a cycle: {cycle}")
            seen.append(current["name"])


def _sql(block: Mapping[str, Any], key: str, where: str) -> str | None:
    value = block.get(key)
    if value is None:
        return None
    text = str(value).strip()
    # one boolean expression, spliced into a select: nothing that ends or comments it out
    if not text or ";" in text or "--" in text or "/*" in text:
        raise CampaignConfigError(
            f"{where}.{key}: must be one SQL boolean expression, without ; or comments"
        )
    return text


def _reentry(value: Any, where: str) -> int | None:
    if value is None:
        return 0  # a new occasion may enter any time (an active instance still blocks it)
    if value == "never":
        return None
    if isinstance(value, Mapping) and set(value) == {"after_days"}:
        return number(value, "after_days", f"{where}.reentry", int, 0, 36600)
    raise CampaignConfigError(
        f"{where}.reentry: 'never', or after_days: N (days since the previous entry), not {value!r}"
    )


def _countries(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list | tuple) or not all(
        isinstance(c, str) and _COUNTRY.match(c) for c in value
    ):
        raise CampaignConfigError(
            f"{where}.countries: a list of ISO 3166 alpha-2 codes (US, GB, ...), not {value!r}"
        )
    return tuple(value)


def check_sql_columns(sql: str, columns: Iterable[str], where: str) -> None:
    """Refuse `sql` unless it is an expression over `columns` alone: bound by DuckDB against
    a row of those names (typed NULL: any function accepts them), so a misspelled column is
    named before the night runs instead of failing dbt half way."""
    _check_sql_columns(sql, tuple(dict.fromkeys(columns)), where)


@lru_cache(maxsize=1024)  # every reading of the manifest checks the same few conditions
def _check_sql_columns(sql: str, columns: tuple[str, ...], where: str) -> None:
    con = duckdb.connect()
    try:
        names = ", ".join(f'null as "{c}"' for c in columns)
        con.execute(f"create view journey_context as select {names}")
        con.execute(f"explain select ({sql}) from journey_context")
    except duckdb.BinderException as error:
        found = re.search(r'column "?([^"\s]+)"? not found', str(error))
        what = f"unknown column {found.group(1)!r}" if found else str(error).splitlines()[0]
        raise CampaignConfigError(f"{where}: {what}") from None
    except duckdb.Error as error:
        raise CampaignConfigError(f"{where}: {str(error).splitlines()[0]}") from None
    finally:
        con.close()
