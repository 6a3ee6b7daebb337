-- The web events of the last days as of D, once each, with the contact their visitor logged
-- in as: the rows of int_web_events_stitched dated D - N + 1 .. D (UTC), N the longest window
-- a reader needs (page views, cart adds, abandoned carts), without de-duplicating every web
-- event ever landed as that view must. An event_id counts once, as its first landed copy
-- wherever that landed: only the ids and landing places of older copies are read. Without
-- page_url, which no reader needs and which would be most of what the table writes.
{% set days = [
    var('web_page_view_window_days'),
    var('cart_window_days'),
    var('abandoned_cart_lookback_days') + 1,
] | max %}

with window_events as (
    -- on the raw timestamp, so that older row groups are skipped
    select *
    from {{ ref('stg_web__events') }}
    where
        business_date <= {{ as_of_date() }}
        and event_timestamp < {{ end_of_as_of_date() }}
        and event_timestamp >= {{ utc_midnight(add_days(as_of_date(), 1 - days)) }}
),

copies as (
    select
        event_id,
        business_date,
        source_row
    from {{ ref('stg_web__events') }}
    where
        business_date <= {{ as_of_date() }}
        and event_timestamp < {{ end_of_as_of_date() }}
        and event_id in (select window_events.event_id from window_events)
),

first_dates as (
    select
        event_id,
        min(business_date) as business_date
    from copies
    group by event_id
),

first_copies as (
    -- each event's first copy: the earliest folder, then its earliest row (two aggregates,
    -- where a ranking would sort every copy and misleads PostgreSQL's estimates)
    select
        copies.event_id,
        copies.business_date,
        min(copies.source_row) as source_row
    from copies
    inner join first_dates
        on copies.event_id = first_dates.event_id and copies.business_date = first_dates.business_date
    group by copies.event_id, copies.business_date
)

select
    window_events.event_id,
    window_events.event_timestamp,
    window_events.event_date,
    window_events.event_name,
    window_events.anonymous_id,
    window_events.sku,
    window_events.value,
    visitors.contact_id
from window_events
inner join first_copies
    on
        window_events.event_id = first_copies.event_id
        and window_events.business_date = first_copies.business_date
        and window_events.source_row = first_copies.source_row
left join {{ ref('int_web_visitors_summarized') }} as visitors
    on window_events.anonymous_id = visitors.anonymous_id
