-- Web activity per stitched contact as of D: last seen, recent page views, and add-to-cart
-- events in the last days that no purchase (web or order) has followed yet.
with events as (
    select *
    from {{ ref('int_web_events_stitched') }}
    where contact_id is not null
),

last_purchases as (
    select
        contact_id,
        max(last_purchase_at) as last_purchase_at
    from (
        select
            contact_id,
            max(event_timestamp) as last_purchase_at
        from events
        where event_name = 'purchase'
        group by contact_id
        union all
        select
            contact_id,
            last_purchase_at
        from {{ ref('int_contacts_purchases_summarized') }}
    )
    group by contact_id
)

select
    events.contact_id,
    max(events.event_timestamp) as last_seen_at,
    count(*) filter (
        where
        events.event_name = 'page_view'
        and {{ days_before_as_of('events.event_date') }} < {{ var('web_page_view_window_days') }}
    ) as page_views_30d,
    count(*) filter (
        where
        events.event_name = 'add_to_cart'
        and {{ days_before_as_of('events.event_date') }} < {{ var('cart_window_days') }}
        and (
            last_purchases.last_purchase_at is null
            or events.event_timestamp > last_purchases.last_purchase_at
        )
    ) as cart_adds_7d_without_purchase
from events
left join last_purchases on events.contact_id = last_purchases.contact_id
group by events.contact_id
