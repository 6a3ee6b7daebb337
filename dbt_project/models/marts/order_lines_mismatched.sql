-- Orders as of D whose lines do not add up to their total within a cent: reported (the test
-- warn_order_lines_not_adding_up warns), never refusing the night (docs/contract.md §1). An
-- order without lines is not listed: a landing may carry no lines at all. Sums are
-- DECIMAL(38, 4): each line's amount is below 10^14 (models/extracts.py), an order's lines
-- together need not be.
with lines as (
    select
        order_id,
        count(*) as line_count,
        sum(quantity * unit_price) as lines_amount
    from {{ ref('int_order_lines_resolved') }}
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
