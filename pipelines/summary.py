"""What `nightjar run` prints: rows loaded, cohort sizes, messages per campaign, and a failed
night's cause in a few lines, every detail going to the run's log file instead."""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from dagster import DagsterEvent, ExecuteInProcessResult, InitLoggerContext, logger

from models.privacy import redact
from senders.decision_words import DECISION_WORDS

if TYPE_CHECKING:
    from dagster_shared.error import SerializableErrorInfo

# A cause longer than this is cut in the terminal (its first lines and its last, which says
# what to do); the run's log file has it whole.
MAX_CAUSE_LINES = 6
# Dagster's wrappers around the error an asset raised: the terminal shows what they wrap.
_WRAPPERS = {"DagsterExecutionStepExecutionError", "DagsterUserCodeExecutionError"}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _metadata(result: ExecuteInProcessResult) -> dict[str, dict]:
    found = {}
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        found[materialization.asset_key.to_user_string()] = {
            k: v.value for k, v in materialization.metadata.items()
        }
    return found


def print_summary(result: ExecuteInProcessResult, business_date: str) -> None:
    metadata = _metadata(result)
    loaded = _loaded(metadata)
    if loaded:
        print("  loaded:  " + "; ".join(loaded))
    cohorts = [
        f"{key} {meta['cohort size']:,}"
        + (f" (+{meta['entered']:,} -{meta['left']:,})" if "entered" in meta else "")
        for key, meta in sorted(metadata.items())
        if key.startswith("cohort_") and "cohort size" in meta
    ]
    if cohorts:
        print(f"  cohorts as of {business_date}: " + "; ".join(cohorts))
    for key, meta in sorted(metadata.items()):
        if key.startswith("send_") and "channel" in meta:  # send assets only
            _print_send(key, meta)
    _print_results(metadata)


def _loaded(metadata: dict[str, dict]) -> list[str]:
    """Each extract's rows loaded and set aside, and SendGrid's new events."""
    loaded = [
        f"{key.split('/')[-1]} {meta.get('dagster/row_count', 0):,} rows "
        f"({meta.get('folders_loaded', 0)} folder(s))"
        + (f", {meta['rows_quarantined']:,} quarantined" if meta.get("rows_quarantined") else "")
        + (f", {meta['values_removed']:,} values emptied" if meta.get("values_removed") else "")
        for key, meta in sorted(metadata.items())
        if key.startswith("raw/") and "folders_loaded" in meta
    ]
    events = metadata.get("raw/sendgrid_events", {})
    if events.get("files_loaded"):
        loaded.append(
            f"SendGrid events {events['events_loaded']:,} new"
            + (f", {q:,} quarantined" if (q := events.get("events_quarantined")) else "")
        )
    return loaded


def _print_send(key: str, meta: dict) -> None:
    """A campaign's send: messages sent (or, in a dry run, that would be, with samples), and
    why the others were not."""
    if meta.get("not sent because"):
        print(f"  {key}: nothing sent ({meta['not sent because']})")
        return
    # each reason not to message, as send_decisions names it (assets/sends/campaigns.py labels
    # them in words)
    not_sent = ", ".join(
        f"{meta[word]:,} {decision}"
        for decision, word in sorted(DECISION_WORDS.items())
        if decision != "send" and meta.get(word)
    )
    why = f"; not messaged: {not_sent}" if not_sent else ""
    if meta.get("channel") == "dry run":
        members = meta.get("cohort size", 0)
        print(f"  {key}: would send {meta.get('sent', 0):,} of {members:,}{why}")
        _print_steps(meta)
        for name, sample in sorted(meta.items()):
            if name.startswith("sample message"):
                print("    " + sample.replace("\n", "\n    "))
        return
    delivery = meta.get("delivery") or {}
    print(
        f"  {key}: {meta.get('sent', 0):,} sent via {meta.get('channel')}{why}"
        + "".join(
            f", {delivery[k]:,} {label}"
            for k, label in (
                ("refused", "refused by the provider"),
                ("withdrawn", "withdrawn (suppressed since the decisions)"),
                ("pending", "pending"),
                ("not_attempted", "not attempted"),
            )
            if delivery.get(k)
        )
    )
    _print_steps(meta)


def _print_steps(meta: dict) -> None:
    """A journey's decisions per step (assets/sends/campaigns.py: `steps tonight`)."""
    table = meta.get("steps tonight")
    if table and table.startswith("|"):
        plain = re.sub(r"\\(.)", r"\1", str(table))  # markdown's escapes, for a terminal
        print("    " + plain.replace("\n", "\n    "))


def _print_results(metadata: dict[str, dict]) -> None:
    # chart_path only: the chart itself is a data URL of tens of kilobytes
    for key, meta in sorted(metadata.items()):
        if key.startswith("results_") and "summary" in meta:
            chart = f" (chart: {meta['chart_path']})" if meta.get("chart_path") else ""
            print(f"  {key}: {meta['summary']}{chart}")


def step_failure_message(event: DagsterEvent) -> str:
    """Why a step failed, as its asset said it (a Failure's description, dbt's own error for
    a dbt build) or else the error it raised; secrets and addresses redacted."""
    return "\n".join(cause_lines(event))


def cause_lines(event: DagsterEvent) -> list[str]:
    data = event.step_failure_data
    if data.user_failure_data and data.user_failure_data.description:
        text = data.user_failure_data.description
        lines = _lines(text)
    elif data.error:
        lines = _error_cause(data.error)
    else:
        lines = ["unknown error"]
    return [redact(line) for line in lines]


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in _ANSI.sub("", text).strip().splitlines() if line.strip()]


def _first_line(error: SerializableErrorInfo) -> str:
    """The error's first line, its class named without its module (`_duckdb.IOException`
    reads `IOException`)."""
    line = (_lines(error.message) or [error.cls_name or "unknown error"])[0]
    qualified, colon, rest = line.partition(": ")
    if colon and error.cls_name and qualified.endswith(error.cls_name):
        return f"{error.cls_name}: {rest}"
    return line


def _error_cause(error: SerializableErrorInfo) -> list[str]:
    """The error an asset raised (not Dagster's wrapper around it), and what caused that."""
    while error.cls_name in _WRAPPERS and error.cause:
        error = error.cause
    cause = error.cause or error.context
    return [_first_line(error)] + ([f"caused by {_first_line(cause)}"] if cause else [])


def failure_lines(result: ExecuteInProcessResult) -> list[str]:
    """Each failed step with its cause, for the terminal: steps failing for the same cause
    are named together, so no message is repeated; a long cause is cut."""
    causes: dict[tuple[str, ...], list[str]] = {}
    for event in result.all_events:
        if event.is_step_failure:
            causes.setdefault(tuple(cause_lines(event)), []).append(event.step_key)
    lines = []
    for cause, steps in causes.items():
        shown = _cut(list(cause))
        lines.append(f"  {', '.join(steps)}: {shown[0]}")
        lines.extend(f"    {line}" for line in shown[1:])
    return lines


def run_failure_lines(result: ExecuteInProcessResult) -> list[str]:
    """A run that failed with no step failing (its start, say): the run's own error."""
    for event in result.all_events:
        if event.is_run_failure:
            error = getattr(event.event_specific_data, "error", None)
            cause = _error_cause(error) if error else _lines(event.message or "")
            return [f"  {redact(line)}" for line in _cut(cause or ["the run failed"])]
    return ["  the run failed (no step failed; see the run's log)"]


def _cut(lines: list[str]) -> list[str]:
    if len(lines) <= MAX_CAUSE_LINES:
        return lines
    hidden = len(lines) - MAX_CAUSE_LINES + 1
    head = lines[: MAX_CAUSE_LINES - 2]
    return [*head, f"… {hidden} more line(s) in the run's log", lines[-1]]


class _Warnings(logging.Handler):
    """The terminal's share of Dagster's log: warnings only, one short line each. Errors are
    the failed steps, which the CLI prints once with their cause when the run is over."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            return
        meta = getattr(record, "dagster_meta", None) or {}
        text = redact(meta.get("orig_message") or record.getMessage())
        where = f" in {meta['step_key']}" if meta.get("step_key") else ""
        # sys.stderr looked up now: a test may have replaced it since the run began
        print(f"nightjar: warning{where}: {text}".replace("\n", "\n  "), file=sys.stderr)


class _RunLogFile(logging.Handler):
    """Every record of the run, tracebacks included, appended to the run's log file (opened
    for each record: nothing stays open once the run is over)."""

    def __init__(self, path: Path) -> None:
        super().__init__(level=logging.DEBUG)
        self.path = path
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)-8s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(redact(self.format(record)) + "\n")
        except OSError:
            pass  # a log that cannot be written never fails the night it describes


@logger(
    config_schema={"path": str},
    description="nightjar run's log: warnings to the terminal, every event to a file",
)
def run_log(init_context: InitLoggerContext) -> logging.Logger:
    path = Path(init_context.logger_config["path"])
    with contextlib.suppress(OSError):  # then the file is not written, the night goes on
        path.parent.mkdir(parents=True, exist_ok=True)
    run_logger = logging.Logger("nightjar", level=logging.DEBUG)
    run_logger.addHandler(_Warnings())
    run_logger.addHandler(_RunLogFile(path))
    return run_logger
