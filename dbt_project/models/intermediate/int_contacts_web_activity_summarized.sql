-- Web activity per stitched contact as of D: last seen, recent page views, and add-to-cart
-- events in the last days that no purchase (web or order) has followed yet.
--
-- The same figures as summarizing int_web_events_stitched, without reading every web event
-- ever landed each night: latest timestamps come from the visitors' summary, and only the
-- recent events, which are counted, are de-duplicated (an event_id counts once, as its first
-- landed copy, wherever that landed: only the ids and landing places of older copies are read).
{% set window_days = [var('web_page_view_window_days'), var('cart_window_days')] | max %}

with visitors as (
    select * from {{ ref('int_web_visitors_summarized') }}
    where contact_id is not null
),

window_events as (
    -- the last days' events; on the raw timestamp, so that old row groups are skipped
    select *
    from {{ ref('stg_web__events') }}
    where
        business_date <= {{ as_of_date() }}
        and event_timestamp < {{ end_of_as_of_date() }}
        and event_timestamp
        >= timezone('UTC', cast({{ as_of_date() }} - {{ window_days - 1 }} as timestamp))
),

first_copies as (
    select
        event_id,
        min(struct_pack(business_date, source_row)) as first_copy
    from {{ ref('stg_web__events') }}
    where
        business_date <= {{ as_of_date() }}
        and event_timestamp < {{ end_of_as_of_date() }}
        and event_id in (select window_events.event_id from window_events)
    group by event_id
),

recent as (
    select window_events.*
    from window_events
    inner join first_copies
        on
            window_events.event_id = first_copies.event_id
            and struct_pack(window_events.business_date, window_events.source_row)
            = first_copies.first_copy
),

per_contact as (
    select
        contact_id,
        max(last_seen_at) as last_seen_at,
        max(last_web_purchase_at) as last_web_purchase_at
    from visitors
    group by contact_id
),

last_purchases as (
    select
        per_contact.contact_id,
        greatest(per_contact.last_web_purchase_at, orders.last_purchase_at) as last_purchase_at
    from per_contact
    left join {{ ref('int_contacts_purchases_summarized') }} as orders
        on per_contact.contact_id = orders.contact_id
),

recent_counts as (
    select
        visitors.contact_id,
        count(*) filter (
            where
            recent.event_name = 'page_view'
            and {{ days_before_as_of('recent.event_date') }} < {{ var('web_page_view_window_days') }}
        ) as page_views_30d,
        count(*) filter (
            where
            recent.event_name = 'add_to_cart'
            and {{ days_before_as_of('recent.event_date') }} < {{ var('cart_window_days') }}
            and (
                last_purchases.last_purchase_at is null
                or recent.event_timestamp > last_purchases.last_purchase_at
            )
        ) as cart_adds_7d_without_purchase
    from recent
    inner join visitors on recent.anonymous_id = visitors.anonymous_id
    left join last_purchases on visitors.contact_id = last_purchases.contact_id
    group by visitors.contact_id
)

select
    per_contact.contact_id,
    per_contact.last_seen_at,
    coalesce(recent_counts.page_views_30d, 0) as page_views_30d,
    coalesce(recent_counts.cart_adds_7d_without_purchase, 0) as cart_adds_7d_without_purchase
from per_contact
left join recent_counts on per_contact.contact_id = recent_counts.contact_id
