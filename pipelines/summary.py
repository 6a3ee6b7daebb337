"""What `nightjar run` prints: rows loaded, cohort sizes, messages per campaign, failures."""

from __future__ import annotations

import sys

from dagster import DagsterEvent, ExecuteInProcessResult

from pipelines.redaction import redact


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
    if loaded:
        print("  loaded:  " + "; ".join(loaded))
    cohorts = [
        f"{key} {meta['dagster/row_count']:,}"
        + (f" (+{meta['entered']:,} -{meta['left']:,})" if "entered" in meta else "")
        for key, meta in sorted(metadata.items())
        if key.startswith("cohort_") and "dagster/row_count" in meta
    ]
    if cohorts:
        print(f"  cohorts as of {business_date}: " + "; ".join(cohorts))
    for key, meta in sorted(metadata.items()):
        if not key.startswith("send_") or "channel" not in meta:  # send assets only
            continue
        if meta.get("skipped_reason"):
            print(f"  {key}: nothing sent ({meta['skipped_reason']})")
            continue
        not_sent = ", ".join(
            f"{value:,} {name.removeprefix('decision_')}"
            for name, value in sorted(meta.items())
            if name.startswith("decision_") and name != "decision_send" and value
        )
        why = f"; not messaged: {not_sent}" if not_sent else ""
        if meta.get("channel") == "dry run":
            members = meta.get("cohort_size", 0)
            print(f"  {key}: would send {meta.get('sent', 0):,} of {members:,}{why}")
            for name, sample in sorted(meta.items()):
                if name.startswith("sample_message"):
                    print("    " + sample.replace("\n", "\n    "))
        else:
            print(
                f"  {key}: {meta.get('sent', 0):,} sent via {meta.get('channel')}{why}"
                + "".join(
                    f", {meta[k]:,} {label}"
                    for k, label in (
                        ("refused", "refused by the provider"),
                        ("withdrawn", "withdrawn (suppressed since the decisions)"),
                        ("pending", "pending"),
                        ("not_attempted", "not attempted"),
                    )
                    if meta.get(k)
                )
            )
    _print_results(metadata)


def _print_results(metadata: dict[str, dict]) -> None:
    # chart_path only: the chart itself is a data URL of tens of kilobytes
    for key, meta in sorted(metadata.items()):
        if key.startswith("results_") and "summary" in meta:
            print(f"  {key}: {meta['summary']} (chart: {meta['chart_path']})")


def step_failure_message(event: DagsterEvent) -> str:
    """Why a step failed, as its asset said it (a Failure's description) or else the error;
    secrets and addresses redacted."""
    data = event.step_failure_data
    message = (
        data.user_failure_data.description
        if data.user_failure_data and data.user_failure_data.description
        else (data.error.message.strip() if data.error else "unknown error")
    )
    return redact(message)


def print_failures(result: ExecuteInProcessResult) -> None:
    for event in result.all_events:
        if event.is_step_failure:
            print(f"  FAILED {event.step_key}: {step_failure_message(event)}", file=sys.stderr)
