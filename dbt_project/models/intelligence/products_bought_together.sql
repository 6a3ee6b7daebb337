-- Item-to-item "bought together" scores as of D: for each SKU, the SKUs most often on the same
-- completed order in the window ending D (bought_together_window_days, 365), normalised so
-- that a bestseller is not everyone's neighbour. A basket is an order, not a contact's day:
-- an order is what was chosen together, guests' orders count too (they have no contact), and
-- a customer's two orders of a day are rare enough not to matter.
--
-- The counts are int_order_baskets_daily's, summed over the window: a night recounts only the
-- days its orders touched, not a year of lines.
with window_days as (
    select *
    from {{ ref('int_order_baskets_daily') }}
    where
        ordered_on <= {{ as_of_date() }}
        and {{ days_before_as_of('ordered_on') }} < {{ var('bought_together_window_days') }}
),

orders_total as (
    select sum(orders) as orders_total
    from window_days
    where sku is null
),

item_orders as (
    -- orders holding each SKU: the pairs' denominators
    select
        sku,
        sum(orders) as orders
    from window_days
    where sku is not null and related_sku is null
    group by sku
),

pair_counts as (
    select
        sku,
        related_sku,
        sum(orders) as orders_together
    from window_days
    where related_sku is not null
    group by sku, related_sku
    having sum(orders) >= {{ var('bought_together_min_orders') }}
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
        cast(both_ways.orders_together as {{ type_double() }}) / items.orders as confidence,
        -- how much more often together than if bought independently (1 = no affinity)
        cast(both_ways.orders_together as {{ type_double() }}) * orders_total.orders_total
        / (items.orders * related.orders) as lift,
        -- symmetric, 0..1, and less partial to rare pairs than lift
        -- to twelve places: engines' square roots differ in the last bit of a double
        cast(
            cast(both_ways.orders_together as {{ type_double() }}) / sqrt(items.orders * related.orders)
            as decimal(18, 12)
        ) as cosine
    from both_ways
    inner join item_orders as items on both_ways.sku = items.sku
    inner join item_orders as related on both_ways.related_sku = related.sku
    cross join orders_total
),

ranked as (
    select
        *,
        -- cosines equal but for the last bits of their doubles (4/sqrt(16320), 2/sqrt(4080))
        -- are a tie on every engine: cosine is a decimal
        row_number() over (
            partition by sku
            order by cosine desc, orders_together desc, related_sku asc
        ) as neighbour_rank,
        {{ as_of_date() }} as as_of_date
    from scored
)

select * from ranked
where neighbour_rank <= {{ var('bought_together_max_neighbours') }}
