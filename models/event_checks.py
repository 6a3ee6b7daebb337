"""The rules a landed SendGrid event line must follow, as the DuckDB SQL that checks a whole
file's lines in one pass, and what a load of event files reports.

Every line is accounted for: it loads, or it is quarantined with the rule it broke (a value
of an optional field of the wrong type is emptied and the event loaded). The SQL reads a
table `event_file_lines` (source_row, line) and leaves `checked_events`; running it is the
ingest asset's (assets/ingest/sendgrid_events.py).
"""

import datetime as dt
from dataclasses import dataclass, field

# The fields Nightjar uses; SendGrid sends more, and the landed files keep them all. Text
# fields take a JSON string (or a number, as text); asm_group_id an integer.
TEXT_FIELDS = (
    "sg_event_id", "email", "sg_message_id", "reason", "type", "campaign", "contact_id",
    "send_id", "topic",
)  # fmt: skip
INTEGER_FIELDS = ("asm_group_id",)
# No event is older than SendGrid itself. Later than the receipt date is allowed, however
# far (up to the last representable second): a webhook host whose clock runs days behind
# must not turn a real unsubscribe into mail sent. Out of this range DuckDB's to_timestamp
# fails the whole load (10**20).
EARLIEST_EVENT = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
LATEST_EVENT = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)

# The rules, as "<column> must be <rule>" reads.
NOT_AN_OBJECT = "one JSON object a line (a line cut short by a crash, or not JSON)"
REQUIRED = "present (it is required)"
TEXT = "text"
INTEGER = "an integer"
WHOLE_SECONDS = "a whole number of seconds since 1970-01-01 UTC"
IN_RANGE = "from 2000-01-01 to 9999-12-31 (UTC)"


@dataclass(frozen=True)
class Problem:
    """One quarantine row: a line left out (row_quarantined) or a value emptied."""

    source_file: str
    source_row: int
    column_name: str
    rule: str
    action: str

    def __str__(self) -> str:
        done = "left out" if self.action == "row_quarantined" else "value emptied"
        where = f"{self.source_file} line {self.source_row}"
        return f"{where}: {self.column_name} must be {self.rule} ({done})"


@dataclass
class EventsLoaded:
    """What a load did: files (re)loaded, events loaded, and every problem found."""

    files: int = 0
    rows: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def quarantined(self) -> int:
        """Lines left out (a line may break more than one rule)."""
        return len(
            {(p.source_file, p.source_row) for p in self.problems if p.action == "row_quarantined"}
        )

    @property
    def values_removed(self) -> int:
        return sum(p.action == "value_removed" for p in self.problems)


_EXTRACTED = ("event", "timestamp", *TEXT_FIELDS, *INTEGER_FIELDS)
_TEXT_TYPES = "'VARCHAR', 'BIGINT', 'UBIGINT', 'DOUBLE'"
_COLUMN_BREAK = ",\n        "
_PATHS = "[" + ", ".join(f"'$.{name}'" for name in _EXTRACTED) + "]"


def _typed_fields() -> str:
    """Each field's value when its JSON type fits (else null), and whether it was there
    with another type (an object, a list, true, an integer past BIGINT): to be emptied."""
    columns = []
    for name in TEXT_FIELDS:
        fits = f"{name}_type in ({_TEXT_TYPES})"
        columns.append(f"case when {fits} then {name}_text end as {name}")
        columns.append(f"coalesce({name}_type <> 'NULL' and not {fits}, false) as {name}_wrong")
    for name in INTEGER_FIELDS:
        integer = f"{name}_type in ('BIGINT', 'UBIGINT')"
        value = f"case when {integer} then try_cast({name}_text as bigint) end"
        columns.append(f"{value} as {name}")
        columns.append(
            f"coalesce({name}_type <> 'NULL' and {value} is null, false) as {name}_wrong"
        )
    return _COLUMN_BREAK.join(columns)


def _field_texts() -> str:
    """Each extracted field's JSON type and text (an object's or a list's as JSON text)."""
    return _COLUMN_BREAK.join(
        f"json_type(found[{i}]) as {name}_type, found[{i}]->>'$' as {name}_text"
        for i, name in enumerate(_EXTRACTED, 1)
    )


# Each line parsed once, and every field taken out of it in one pass (json_type(doc, path)
# per field would parse the line again for each): its typed fields, and the rule it breaks
# (null when none). A blank line holds no event (the webhook never writes one, an editor
# might): skipped, not reported.
CHECK_EVENTS = f"""
create or replace temp table checked_events as
with parsed as (
    select source_row, try_cast(line as json) as doc
    from event_file_lines
    where not regexp_full_match(line, '\\s*')
),
extracted as (
    select
        source_row, coalesce(json_type(doc) = 'OBJECT', false) as is_object,
        json_extract(doc, {_PATHS}) as found
    from parsed
),
fields as (
    select
        source_row, is_object,
        {_field_texts()}
    from extracted
),
typed as (
    select
        *,
        case when timestamp_type in ('BIGINT', 'UBIGINT', 'DOUBLE')
             then try_cast(timestamp_text as double) end as seconds,
        {_typed_fields()}
    from fields
),
checked as (
    select
        *,
        case when not is_object then $not_an_object end as line_problem,
        case when not is_object then null
             when coalesce(event_type, 'NULL') = 'NULL' or event_text = '' then $required
             when event_type <> 'VARCHAR' then $text end as event_problem,
        case when not is_object then null
             when coalesce(timestamp_type, 'NULL') = 'NULL' then $required
             when seconds is null or seconds <> floor(seconds) then $whole_seconds
             when seconds < $earliest or seconds > $latest then $in_range
        end as timestamp_problem
    from typed
)
select
    *,
    line_problem is null and event_problem is null and timestamp_problem is null as loads
from checked
"""
CHECK_EVENTS_PARAMETERS = {
    "earliest": EARLIEST_EVENT.timestamp(),
    "latest": LATEST_EVENT.timestamp(),
    "not_an_object": NOT_AN_OBJECT,
    "required": REQUIRED,
    "text": TEXT,
    "whole_seconds": WHOLE_SECONDS,
    "in_range": IN_RANGE,
}


def _problems_sql() -> str:
    """Every rule broken, one row each: a line left out, or an optional value emptied on an
    event that loads. The line itself is not shown (an IP address, a user agent): its
    number finds it in the file."""
    left_out = [
        "select source_row, 'line' as column_name, line_problem as rule, null as value, "
        "'row_quarantined' as action from checked_events where line_problem is not null",
        *(
            f"select source_row, '{name}', {name}_problem, {name}_text, 'row_quarantined' "
            f"from checked_events where {name}_problem is not null"
            for name in ("event", "timestamp")
        ),
    ]
    emptied = [
        f"select source_row, '{name}', ${'integer' if name in INTEGER_FIELDS else 'text'}, "
        f"{name}_text, 'value_removed' from checked_events where loads and {name}_wrong"
        for name in (*TEXT_FIELDS, *INTEGER_FIELDS)
    ]
    return "\nunion all\n".join(left_out + emptied) + "\norder by source_row, column_name"


# Of checked_events: (source_row, column_name, rule, value, action), one row per problem.
PROBLEMS = _problems_sql()
PROBLEMS_PARAMETERS = {"text": TEXT, "integer": INTEGER}
