-- The win-back journey's entries are exactly the lapsed buyers (both directions).
{{ config(meta={'dagster': {'ref': {'name': 'journey_winback'}}}) }}
with expected as (
    select contact_id
    from {{ ref('audience') }}
    where
        order_count > 0
        and days_since_last_purchase >= {{ var('reactivation_min_days_since_purchase') }}
),

actual as (
    select contact_id from {{ ref('journey_winback') }}
),

{{ cohort_mismatches('expected', 'actual') }}
