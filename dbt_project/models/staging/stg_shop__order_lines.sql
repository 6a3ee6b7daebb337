-- A folder holds one row per order (a duplicate order_id refuses the file), so the join adds
-- no row: each line version gets the version of its order it landed with, if any.
select
    landed.business_date,
    landed.source_row,
    landed.order_id,
    landed.line_id,
    landed.sku,
    landed.product_name,
    landed.category,
    landed.quantity,
    landed.unit_price,
    orders.updated_at as order_updated_at
from {{ source('raw', 'order_lines') }} as landed
left join {{ source('raw', 'orders') }} as orders
    on
        landed.business_date = orders.business_date
        and landed.order_id = orders.order_id
