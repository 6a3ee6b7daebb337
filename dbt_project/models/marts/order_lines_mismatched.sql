-- Orders as of D whose lines do not add up to their total within a cent: reported (the test
-- warn_order_lines_not_adding_up warns), never refusing the night (docs/contract.md §1). An
-- order without lines is not listed: a landing may carry no lines at all. Sums are
-- DECIMAL(38, 4): each line's amount is below 10^14 (models/extracts.py), an order's lines
-- together need not be.
--
-- Incremental (macros/incremental.sql): a night sums again only the lines of the orders it
-- touched (orders_touched_since_last_build), whose rows the pre-hook takes out first, so that
-- an order whose lines were corrected leaves the report.
{{ config(
    materialized=incremental_materialization(),
    incremental_strategy='append',
    pre_hook="{{ delete_rows_to_recompute('order_id', orders_touched_since_last_build) }}",
    post_hook=[
        "{{ record_incremental_build() }}",
        "{{ restamp_kept_rows() }}",
    ]
) }}
{% set windowed = is_incremental() and var('incremental_since', none) is not none %}
-- the refs read only in an incremental night:
-- depends_on: {{ ref('stg_shop__orders') }}, {{ ref('stg_shop__order_lines') }}

with lines as (
    select
        order_id,
        count(*) as line_count,
        sum(quantity * unit_price) as lines_amount
    from {{ ref('int_order_lines_resolved') }}
    {% if windowed %}
        where order_id in ({{ orders_touched_since_last_build() }})
    {% endif %}
    group by order_id
)

select
    orders.order_id,
    orders.ordered_on,
    orders.status,
    orders.total_amount,
    lines.line_count,
    cast(lines.lines_amount as decimal(38, 4)) as lines_amount,
    cast(lines.lines_amount - orders.total_amount as decimal(38, 4)) as difference,
    {{ as_of_date() }} as as_of_date
from lines
inner join {{ ref('int_orders_resolved') }} as orders on lines.order_id = orders.order_id
where abs(lines.lines_amount - orders.total_amount) > 0.01
