-- Item-to-item "bought together" scores as of D: for each SKU, the SKUs most often on the same
-- completed order in the window ending D (bought_together_window_days, 365), normalised so
-- that a bestseller is not everyone's neighbour. A basket is an order, not a contact's day:
-- an order is what was chosen together, guests' orders count too (they have no contact), and
-- a customer's two orders of a day are rare enough not to matter.
--
-- A table rebuilt whole each night, not incremental: the pairs of a few hundred SKUs are a
-- few thousand rows, and their counts come from one pass over a year of lines. A sliding
-- window would need per-day pair counts (days x pairs rows, more than the lines it saves
-- reading) and would still have to take back the pairs of orders refunded since.
with baskets as (
    -- each completed order of the window as its SKUs, each once and sorted, so that each pair
    -- appears once, as (earlier, later): one aggregation by order over the lines
    select
        order_id,
        list(distinct sku order by sku) as skus
    from {{ ref('int_order_lines') }}
    where
        status = 'completed'
        and sku is not null
        and ordered_on <= {{ as_of_date() }}
        and {{ days_before_as_of('ordered_on') }} < {{ var('bought_together_window_days') }}
    group by order_id
),

orders_total as (
    select count(*) as orders_total from baskets
),

item_orders as (
    -- orders holding each SKU: the pairs' denominators
    select
        sku,
        count(*) as orders
    from (select unnest(skus) as sku from baskets) as items
    group by sku
),

positions as (
    select
        skus,
        unnest(range(1, len(skus))) as sku_position
    from baskets
    where len(skus) > 1
),

pairs as (
    select
        skus[sku_position] as sku,
        unnest(skus[sku_position + 1:]) as related_sku
    from positions
),

pair_counts as (
    select
        sku,
        related_sku,
        count(*) as orders_together
    from pairs
    group by sku, related_sku
    having count(*) >= {{ var('bought_together_min_orders') }}
),

both_ways as (
    select
        sku,
        related_sku,
        orders_together
    from pair_counts
    union all
    select
        related_sku as sku,
        sku as related_sku,
        orders_together
    from pair_counts
),

scored as (
    select
        both_ways.sku,
        both_ways.related_sku,
        both_ways.orders_together,
        items.orders as sku_orders,
        related.orders as related_sku_orders,
        orders_total.orders_total,
        -- P(related | sku): the share of the SKU's orders that also hold the related one
        both_ways.orders_together / items.orders as confidence,
        -- how much more often together than if bought independently (1 = no affinity)
        both_ways.orders_together * orders_total.orders_total / (items.orders * related.orders) as lift,
        -- symmetric, 0..1, and less partial to rare pairs than lift
        both_ways.orders_together / sqrt(items.orders * related.orders) as cosine
    from both_ways
    inner join item_orders as items on both_ways.sku = items.sku
    inner join item_orders as related on both_ways.related_sku = related.sku
    cross join orders_total
)

select
    *,
    row_number() over (
        partition by sku
        order by cosine desc, orders_together desc, related_sku asc
    ) as neighbour_rank,
    {{ as_of_date() }} as as_of_date
from scored
qualify neighbour_rank <= {{ var('bought_together_max_neighbours') }}
