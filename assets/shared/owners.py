"""Who answers for each group of assets, as the Dagster UI shows it beside each asset."""

# Data engineers run the night and its inputs; analysts own the SQL models and cohort rules;
# marketers own what is sent and to whom (the three users the README names).
OWNERS = {
    "ingest": ["team:data-engineering"],
    "warehouse": ["team:analytics"],
    "cohorts": ["team:analytics", "team:marketing"],
    "sends": ["team:marketing"],
    "results": ["team:marketing", "team:analytics"],
}
