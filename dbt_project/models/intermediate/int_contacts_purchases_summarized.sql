-- Spend and purchase dates per contact as of D, from completed orders dated on or before D;
-- and the contact's first order of any status, with its status as of D (the first-purchase
-- follow-up's occasion). A contact without a completed order has no row.
--
-- Incremental (macros/incremental.sql): a night recomputes only the contacts whose orders
-- changed or crossed the spend window's edge (contacts_whose_orders_changed), a few percent
-- of them; the pre-hook first takes those contacts' rows out, so that a contact left without
-- a purchase (refunded, or its guest order passed to another contact) keeps none. A full
-- build starts from an empty table.
{%- set windowed = recomputes_changed_contacts() %}
{{ config(
    materialized=incremental_materialization(),
    incremental_strategy='append',
    pre_hook="{{ delete_rows_to_recompute(
        'contact_id', contacts_whose_orders_changed, [var('spend_window_days')],
        recomputes_changed_contacts()
    ) }}",
    post_hook="{{ record_incremental_build() }}"
) }}

with orders as (
    select *
    from {{ ref('int_orders_attributed') }}
    where
        contact_id is not null
        and ordered_on <= {{ as_of_date() }}
    {% if windowed %}
        and contact_id in ({{ contacts_whose_orders_changed(var('spend_window_days')) }})
    {% endif %}
),

windowed as (
    select
        *,
        status = 'completed' as is_purchase,
        {{ days_before_as_of('ordered_on') }} < {{ var('spend_window_days') }} as in_window
    from orders
),

summarized as (
    select
        contact_id,
        -- money in DuckDB's sum type on every engine (PostgreSQL's sum has no scale)
        cast(sum(total_amount) filter (where is_purchase) as decimal(38, 4)) as total_spend,
        cast(coalesce(sum(total_amount) filter (where is_purchase and in_window), 0) as decimal(38, 4))
            as spend_730d,
        count(*) filter (where is_purchase) as order_count,
        count(*) filter (where is_purchase and in_window) as order_count_730d,
        min(ordered_on) filter (where is_purchase) as first_purchase_date,
        max(ordered_on) filter (where is_purchase) as last_purchase_date,
        max(ordered_at) filter (where is_purchase) as last_purchase_at,
        -- the first order ever, order_id breaking a tie of timestamps
        {{ first_by('order_id', ['ordered_at', 'order_id']) }} as first_order_id,
        {{ first_by('ordered_on', ['ordered_at', 'order_id']) }} as first_order_on,
        {{ first_by('status', ['ordered_at', 'order_id']) }} as first_order_status
    from windowed
    group by contact_id
    having count(*) filter (where is_purchase) > 0
)

select * from summarized
