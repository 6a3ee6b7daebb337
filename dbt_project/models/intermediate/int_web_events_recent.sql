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
left join {{ ref('int_web_visitors_summarized') }} as visitors
    on window_events.anonymous_id = visitors.anonymous_id
where
    -- its first copy: no copy landed before it, in an earlier folder or higher in its own
    -- (one anti-join, where the earliest folder and row of every event took two aggregates
    -- and two joins, a quarter more of the model at a million contacts)
    not exists (
        select 1 from copies
        where
            copies.event_id = window_events.event_id
            and (
                copies.business_date < window_events.business_date
                or (
                    copies.business_date = window_events.business_date
                    and copies.source_row < window_events.source_row
                )
            )
    )
