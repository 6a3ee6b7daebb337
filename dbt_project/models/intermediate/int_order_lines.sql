-- The lines of the orders as of D that int_orders_attributed knows, with the order's
-- contact, dates and CURRENT status: a refunded or cancelled order's lines are not bought.
-- A recommender reads this interface; its columns are fixed (docs/contract.md §8).
--
-- A table, incremental (macros/incremental.sql): every reader of lines would otherwise join
-- some 25 million lines to the orders and their attribution again, each one of them, every
-- night. A night rewrites the lines of the orders it touched: an order or line version that
-- became visible since the last build, and every guest order, whose attribution by email
-- changes as contacts come, change address or are erased (a few percent of the orders).
{{ config(
    materialized='incremental',
    unique_key=['order_id', 'line_id'],
    post_hook="{{ record_incremental_build() }}"
) }}
{% set windowed = is_incremental() and var('incremental_since', none) is not none %}
-- the refs read only in an incremental night:
-- depends_on: {{ ref('stg_shop__orders') }}, {{ ref('stg_shop__order_lines') }}
-- depends_on: {{ ref('int_orders_resolved') }}

{% if windowed %}
    with touched as (
        {{ orders_touched_since_last_build() }}
        union all
        select order_id
        from {{ ref('int_orders_resolved') }}
        where contact_id is null
    ),

    lines as (
        select * from {{ ref('int_order_lines_resolved') }}
        where order_id in (select touched.order_id from touched)
    ),

    orders as (
        select * from {{ ref('int_orders_attributed') }}
        where order_id in (select touched.order_id from touched)
    )
{% else %}
    with lines as (
        select * from {{ ref('int_order_lines_resolved') }}
    ),

    orders as (
        select * from {{ ref('int_orders_attributed') }}
    )
{% endif %}

select
    lines.order_id,
    lines.line_id,
    orders.contact_id,
    lines.sku,
    lines.product_name,
    lines.category,
    lines.quantity,
    lines.unit_price,
    cast(lines.quantity * lines.unit_price as decimal(18, 4)) as line_amount,
    orders.ordered_at,
    orders.ordered_on,
    orders.status
from lines
inner join orders on lines.order_id = orders.order_id
