-- Web activity per stitched contact as of D: last seen, recent page views, and add-to-cart
-- events in the last days that no purchase (web or order) has followed yet.
--
-- The same figures as summarizing int_web_events_stitched, without reading every web event
-- ever landed each night: latest timestamps come from the visitors' summary, and only the
-- recent events, which are counted, are de-duplicated (int_web_events_recent).
with visitors as (
    select * from {{ ref('int_web_visitors_summarized') }}
    where contact_id is not null
),

recent as (
    select * from {{ ref('int_web_events_recent') }}
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
        recent.contact_id,
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
    left join last_purchases on recent.contact_id = last_purchases.contact_id
    where recent.contact_id is not null
    group by recent.contact_id
)

select
    per_contact.contact_id,
    per_contact.last_seen_at,
    coalesce(recent_counts.page_views_30d, 0) as page_views_30d,
    coalesce(recent_counts.cart_adds_7d_without_purchase, 0) as cart_adds_7d_without_purchase
from per_contact
left join recent_counts on per_contact.contact_id = recent_counts.contact_id
