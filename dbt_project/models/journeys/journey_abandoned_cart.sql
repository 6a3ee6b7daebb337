-- Abandoned cart: an identified contact's add_to_cart events on a date X (UTC) with, after
-- its last add_to_cart of X, no completed order and no web purchase dated X. The whole of X
-- must be known, so the contact enters on X + 1 (X < D); the occasion is X, and entered_at
-- that last add_to_cart: the journey ends at an order or purchase after it. Only carts of
-- the last var abandoned_cart_lookback_days days: the journey reads a few days back.
-- The cart: up to var cart_max_skus distinct SKUs added on X, most recent first, each with
-- the value of its latest add_to_cart. An add_to_cart without a SKU counts for the timing but
-- names no item: a cart of such events alone enters with no items.
with web as (
    -- one read of the recent events for both the carts and the web purchases
    select
        contact_id,
        event_date,
        event_timestamp,
        event_id,
        event_name,
        sku,
        cast(value as {{ type_double() }}) as item_value
    from {{ ref('int_web_events_recent') }}
    where
        event_name in ('add_to_cart', 'purchase')
        and contact_id is not null
        and event_date < {{ as_of_date() }}
        and event_date
        >= cast({{ dbt.dateadd('day', -var('abandoned_cart_lookback_days'), as_of_date()) }} as date)
),

carts as (
    select
        contact_id,
        event_date as cart_date,
        max(event_timestamp) filter (where event_name = 'add_to_cart') as last_added_at,
        max(event_timestamp) filter (where event_name = 'purchase') as last_web_purchase_at
    from web
    group by contact_id, event_date
    having count(*) filter (where event_name = 'add_to_cart') > 0
),

orders as (
    -- each contact's latest completed order of each day of the window
    select
        contact_id,
        ordered_on,
        max(ordered_at) as last_ordered_at
    from {{ ref('int_orders_attributed') }}
    where
        status = 'completed'
        and contact_id is not null
        and ordered_on < {{ as_of_date() }}
        and ordered_on
        >= cast({{ dbt.dateadd('day', -var('abandoned_cart_lookback_days'), as_of_date()) }} as date)
    group by contact_id, ordered_on
),

abandoned as (
    -- nothing bought after the last add_to_cart: the latest purchase and order of the day,
    -- if any, came before it (or at the same instant)
    select
        carts.contact_id,
        carts.cart_date,
        carts.last_added_at
    from carts
    left join orders
        on carts.contact_id = orders.contact_id and carts.cart_date = orders.ordered_on
    where
        coalesce(carts.last_web_purchase_at <= carts.last_added_at, true)
        and coalesce(orders.last_ordered_at <= carts.last_added_at, true)
),

added as (
    select
        contact_id,
        event_date as cart_date,
        sku,
        item_value,
        event_timestamp,
        event_id
    from web
    where event_name = 'add_to_cart' and sku is not null
),

latest_per_sku as (
    {{ first_row_per(
        'added', 'contact_id, cart_date, sku', 'event_timestamp desc, event_id desc',
        ['contact_id', 'cart_date', 'sku', 'item_value', 'event_timestamp']
    ) }}
),

items as (
    select *
    from (
        select
            latest_per_sku.*,
            row_number() over (
                partition by latest_per_sku.contact_id, latest_per_sku.cart_date
                order by latest_per_sku.event_timestamp desc, latest_per_sku.sku asc
            ) as item_rank
        from latest_per_sku
    ) as ranked
    where item_rank <= {{ var('cart_max_skus') }}
),

baskets as (
    select
        contact_id,
        cart_date,
        {{ ordered_records({'sku': 'sku', 'value': 'item_value'}, ['item_rank']) }} as cart_items,
        sum(item_value) as cart_value
    from items
    group by contact_id, cart_date
)

select
    abandoned.contact_id,
    abandoned.cart_date as occasion,
    cast({{ dbt.dateadd('day', 1, 'abandoned.cart_date') }} as date) as entered_on,
    -- a naive UTC timestamp, whatever the session time zone
    {{ local_time("'UTC'", 'abandoned.last_added_at') }} as entered_at,
    baskets.cart_items,
    baskets.cart_value,
    {{ as_of_date() }} as as_of_date
from abandoned
-- a cart without any SKU has nothing to remind the contact of: it enters no journey
inner join baskets
    on abandoned.contact_id = baskets.contact_id and abandoned.cart_date = baskets.cart_date
