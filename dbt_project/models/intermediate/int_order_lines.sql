-- The lines of the orders as of D that int_orders_attributed knows, with the order's
-- contact, dates and CURRENT status: a refunded or cancelled order's lines are not bought.
-- A recommender reads this interface; its columns are fixed (docs/contract.md §8).
with lines as (
    select * from {{ ref('int_order_lines_resolved') }}
),

orders as (
    select * from {{ ref('int_orders_attributed') }}
)

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
