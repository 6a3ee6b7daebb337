-- The loyalty cohort is exactly the contacts that meet its rule (both directions).
{{ config(meta={'dagster': {'ref': {'name': 'cohort_loyalty'}}}) }}
with expected as (
    select contact_id
    from {{ ref('audience') }}
    where
        days_since_last_purchase < {{ var('loyalty_max_days_since_purchase') }}
        and spend_730d > {{ var('loyalty_min_spend_730d') }}
),

actual as (
    select contact_id from {{ ref('cohort_loyalty') }}
),

{{ cohort_mismatches('expected', 'actual') }}
