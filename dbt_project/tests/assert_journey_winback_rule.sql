-- The win-back journey's entries are exactly the lapsed buyers the customer-value model
-- does not expect back (p_alive below var winback_max_p_alive, no prediction, or a one-time
-- buyer), both directions.
{{ config(meta={'dagster': {'ref': {'name': 'journey_winback'}}}) }}
with expected as (
    select contact_id
    from {{ ref('audience') }}
    where
        order_count > 0
        and days_since_last_purchase >= {{ var('reactivation_min_days_since_purchase') }}
        and (p_alive is null or p_alive < {{ var('winback_max_p_alive') }} or order_count = 1)
),

actual as (
    select contact_id from {{ ref('journey_winback') }}
),

{{ cohort_mismatches('expected', 'actual') }}
