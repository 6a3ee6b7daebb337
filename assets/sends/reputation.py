"""The send checks of a sender's reputation: the spam-report and bounce rates SendGrid's events
give over the last reputation_window_days (the sender_reputation model), per campaign and over
all mail, against the limits the mailbox providers enforce (docs/contract.md §12, §17).

A spike means recipients or their providers object to what is being sent; sending more of it
tonight makes it worse, so it blocks like any send check, released with --approve.
"""

import duckdb

from assets.sends.gate import CheckResult
from models.settings import Settings

SPAM_RATE = "spam_rate"
BOUNCE_RATE = "bounce_rate"


def reputation_checks(con: duckdb.DuckDBPyConnection, settings: Settings) -> list[CheckResult]:
    """One check per rate, over all mail and per campaign, of every scope with at least
    NIGHTJAR_REPUTATION_MIN_MESSAGES messages tried in the window; none before the model
    exists (a warehouse built before it)."""
    present = con.execute(
        "select count(*) from duckdb_tables() "
        "where schema_name = 'main' and table_name = 'sender_reputation'"
    ).fetchall()[0][0]
    if not present:
        return []
    rows = con.execute(
        "select campaign, delivered, bounced, spam_reports, spam_rate, bounce_rate, window_days "
        "from main.sender_reputation where delivered + bounced >= ? "
        "order by campaign nulls first",
        [settings.reputation_min_messages],
    ).fetchall()
    results = []
    for campaign, delivered, bounced, reports, spam_rate, bounce_rate, days in rows:
        suffix, what = (f":{campaign}", f"{campaign}'s") if campaign else ("", "all mail's")
        window = f"in the {days} days to the business date"
        results.append(
            CheckResult(
                SPAM_RATE + suffix,
                (spam_rate or 0) <= settings.max_spam_rate,
                f"{what} spam reports {spam_rate or 0:.2%} ({reports:,} of {delivered:,} "
                f"delivered) {window}, at most {settings.max_spam_rate:.2%} "
                "(NIGHTJAR_MAX_SPAM_RATE)",
            )
        )
        results.append(
            CheckResult(
                BOUNCE_RATE + suffix,
                (bounce_rate or 0) <= settings.max_bounce_rate,
                f"{what} bounces {bounce_rate or 0:.2%} ({bounced:,} of {delivered + bounced:,} "
                f"tried) {window}, at most {settings.max_bounce_rate:.2%} "
                "(NIGHTJAR_MAX_BOUNCE_RATE)",
            )
        )
    return results
