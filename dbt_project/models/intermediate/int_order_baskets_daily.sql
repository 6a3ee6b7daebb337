-- Per day of completed orders, what products_bought_together sums over its window: the day's
-- orders (sku and related_sku null), the orders holding each SKU (related_sku null), and the
-- orders holding each pair of SKUs (sku < related_sku), an order's SKUs each counted once.
--
-- Incremental (macros/incremental.sql): a night recounts only the days of the orders it
-- touched (new orders, and older ones refunded, cancelled or given other lines since the last
-- build), a few days of orders, where the window holds a year of them. A recounted day always
-- has its orders row, so a day whose orders were all refunded is replaced, not left behind.
{{ config(
    materialized=incremental_materialization(),
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

basket_lines as (
    -- each completed order of those days with its SKUs, each once
    select distinct
        order_lines.ordered_on,
        order_lines.order_id,
        order_lines.sku
    from {{ ref('int_order_lines') }} as order_lines
    where
        order_lines.status = 'completed'
        and order_lines.sku is not null
        and order_lines.ordered_on <= {{ as_of_date() }}
        and order_lines.ordered_on in (select days.ordered_on from days)
),

items as (
    select
        ordered_on,
        sku,
        cast(null as {{ dbt.type_string() }}) as related_sku,
        count(*) as orders
    from basket_lines
    group by ordered_on, sku
),

pairs as (
    select
        ordered_on,
        sku,
        related_sku,
        count(*) as orders
    from ({{ sku_pairs('basket_lines') }}) as basket_pairs
    group by ordered_on, sku, related_sku
),

totals as (
    select
        days.ordered_on,
        cast(null as {{ dbt.type_string() }}) as sku,
        cast(null as {{ dbt.type_string() }}) as related_sku,
        count(distinct basket_lines.order_id) as orders
    from days
    left join basket_lines on days.ordered_on = basket_lines.ordered_on
    where days.ordered_on <= {{ as_of_date() }}
    group by days.ordered_on
)

select * from totals
union all
select * from items
union all
select * from pairs
