-- Each anonymous visitor seen as of D: when it was last seen, its last web purchase, and the
-- contact it turned out to be, the contact_id of its latest event that carried one
-- (docs/contract.md §2; event_id breaks a tie of timestamps, so a re-run always picks the same contact).
-- Latest timestamps need no de-duplication: a repeated event is as late as its first copy.
-- Incremental (macros/incremental.sql): a night summarizes only the events that became
-- visible since the last build and folds them into the visitors' rows; latest-of is the
-- same whether taken at once or night by night.
{{ config(
    materialized=incremental_materialization(),
    unique_key='anonymous_id',
    post_hook="{{ record_incremental_build() }}"
) }}
{% set windowed = is_incremental() and var('incremental_since', none) is not none %}
{% set columns = 'anonymous_id, last_seen_at, last_web_purchase_at, identified_at, identified_by_event, contact_id' %}

with landed as (
    select
        anonymous_id,
        max(event_timestamp) as last_seen_at,
        max(event_timestamp) filter (where event_name = 'purchase') as last_web_purchase_at,
        max(event_timestamp) filter (where contact_id is not null) as identified_at,
        {{ last_by('event_id', ['event_timestamp', 'event_id'], 'contact_id is not null') }}
            as identified_by_event,
        {{ last_by('contact_id', ['event_timestamp', 'event_id']) }} as contact_id
    from {{ ref('stg_web__events') }}
    where
        business_date <= {{ as_of_date() }}
        and event_timestamp < {{ end_of_as_of_date() }}
        and {{ incremental_window(windowed, 'business_date', 'event_timestamp') }}
    group by anonymous_id
)

{% if windowed %}
    , visitors as (
        select {{ columns }} from landed
        union all
        select {{ columns }} from {{ this }}
        where anonymous_id in (select landed.anonymous_id from landed)
    )

    select
        anonymous_id,
        max(last_seen_at) as last_seen_at,
        max(last_web_purchase_at) as last_web_purchase_at,
        max(identified_at) as identified_at,
        {{ last_by('identified_by_event', ['identified_at', 'identified_by_event']) }}
            as identified_by_event,
        {{ last_by('contact_id', ['identified_at', 'identified_by_event']) }} as contact_id
    from visitors
    group by anonymous_id
{% else %}
    select * from landed
{% endif %}
