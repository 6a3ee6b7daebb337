-- Per day of completed orders, what products_bought_together sums over its window: the day's
-- orders (sku and related_sku null), the orders holding each SKU (related_sku null), and the
-- orders holding each pair of SKUs (sku < related_sku), an order's SKUs each counted once.
--
-- Incremental (macros/incremental.sql): a night recounts only the days of the orders it
-- touched (new orders, and older ones refunded, cancelled or given other lines since the last
-- build), a few days of orders, where the window holds a year of them. A recounted day always
-- has its orders row, so a day whose orders were all refunded is replaced, not left behind.
{{ config(
    materialized='incremental',
    unique_key='ordered_on',
    post_hook="{{ record_incremental_build() }}"
) }}
{% set windowed = is_incremental() and var('incremental_since', none) is not none %}
-- the refs read only in an incremental night:
-- depends_on: {{ ref('stg_shop__orders') }}, {{ ref('stg_shop__order_lines') }}
-- depends_on: {{ ref('int_orders_resolved') }}

with days as (
    {% if windowed %}
        select distinct orders.ordered_on
        from {{ ref('int_orders_resolved') }} as orders
        where orders.order_id in (
            {{ orders_touched_since_last_build() }}
        )
    {% else %}
        select distinct ordered_on from {{ ref('int_order_lines') }}
    {% endif %}
),

baskets as (
    -- each completed order of those days as its SKUs, each once and sorted, so that each
    -- pair appears once, as (earlier, later): an aggregation by order, where joining the
    -- lines to themselves would hold every line of a year in memory on a full build
    select
        order_lines.ordered_on,
        order_lines.order_id,
        list(distinct order_lines.sku order by order_lines.sku) as skus
    from {{ ref('int_order_lines') }} as order_lines
    where
        order_lines.status = 'completed'
        and order_lines.sku is not null
        and order_lines.ordered_on <= {{ as_of_date() }}
        and order_lines.ordered_on in (select days.ordered_on from days)
    group by order_lines.ordered_on, order_lines.order_id
),

items as (
    select
        ordered_on,
        sku,
        cast(null as varchar) as related_sku,
        count(*) as orders
    from (
        select
            ordered_on,
            unnest(skus) as sku
        from baskets
    ) as basket_items
    group by ordered_on, sku
),

positions as (
    select
        ordered_on,
        skus,
        unnest(range(1, len(skus))) as sku_position
    from baskets
    where len(skus) > 1
),

pairs as (
    select
        ordered_on,
        sku,
        related_sku,
        count(*) as orders
    from (
        select
            ordered_on,
            skus[sku_position] as sku,
            unnest(skus[sku_position + 1:]) as related_sku
        from positions
    ) as basket_pairs
    group by ordered_on, sku, related_sku
),

totals as (
    select
        days.ordered_on,
        cast(null as varchar) as sku,
        cast(null as varchar) as related_sku,
        count(baskets.order_id) as orders
    from days
    left join baskets on days.ordered_on = baskets.ordered_on
    where days.ordered_on <= {{ as_of_date() }}
    group by days.ordered_on
)

select * from totals
union all
select * from items
union all
select * from pairs
