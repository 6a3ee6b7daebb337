-- Each SKU sold on a completed order line in the bought-together window ending D (365 days by
-- default), with its latest name and category and its rank among its category's bestsellers:
-- the names the recommendations show, and their fallback. Only completed lines count: a
-- cancelled or refunded line was not a sale. One pass over the window's lines.
with lines as (
    select *
    from {{ ref('int_order_lines') }}
    where
        status = 'completed'
        and sku is not null
        and ordered_on <= {{ as_of_date() }}
        -- a range of the column: DuckDB skips the blocks of older lines by their dates
        and ordered_on > cast(
            {{ dbt.dateadd('day', -var('bought_together_window_days'), as_of_date()) }} as date
        )
),

sales as (
    select
        sku,
        -- a product renamed or moved to another category shows as it was last sold, both
        -- from its latest line, even where that line has none
        {{ last_by('product_name', ['ordered_at', 'line_id'], keep_nulls=true) }} as product_name,
        {{ last_by('category', ['ordered_at', 'line_id'], keep_nulls=true) }} as category,
        -- lines, not distinct orders: an SKU is on an order once as a rule, and counting
        -- distinct orders per SKU would cost more than the rest of the model
        count(*) as line_count,
        sum(quantity) as units_sold,
        cast(sum(line_amount) as decimal(38, 4)) as revenue,  -- as contact_category_affinity
        max(ordered_on) as last_sold_on
    from lines
    group by sku
)

select
    sku,
    product_name,
    category,
    line_count,
    units_sold,
    revenue,
    last_sold_on,
    -- bestsellers by units, then lines; the SKU breaks a tie so that a re-run ranks alike
    case
        when category is not null
            then row_number() over (
                partition by category
                order by units_sold desc, line_count desc, sku asc
            )
    end as category_rank,
    {{ as_of_date() }} as as_of_date
from sales
