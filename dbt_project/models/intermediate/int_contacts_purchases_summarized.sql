-- Spend and purchase dates per contact as of D: completed orders dated on or before D only.
with purchases as (
    select *
    from {{ ref('int_orders_attributed') }}
    where
        status = 'completed'
        and contact_id is not null
        and ordered_on <= {{ as_of_date() }}
),

windowed as (
    select
        *,
        {{ days_before_as_of('ordered_on') }} < {{ var('spend_window_days') }} as in_window
    from purchases
)

select
    contact_id,
    sum(total_amount) as total_spend,
    coalesce(sum(total_amount) filter (where in_window), 0) as spend_730d,
    count(*) as order_count,
    count(*) filter (where in_window) as order_count_730d,
    max(ordered_on) as last_purchase_date,
    max(ordered_at) as last_purchase_at
from windowed
group by contact_id
