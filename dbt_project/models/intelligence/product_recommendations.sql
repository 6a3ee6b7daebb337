-- Up to recommendations_per_contact (5) SKUs per contact as of D, best first, each with why:
--   viewed                      viewed or added to a cart in the recent web window (the
--                               window of int_web_events_recent, 31 days by default), the
--                               most viewed first: the contact's own signal comes first;
--   bought_together             a neighbour (products_bought_together) of what the contact
--                               bought in the last recommendation_seed_days (90) or viewed,
--                               by its cosines summed over those SKUs;
--   bestseller_in_top_category  the fallback: the bestsellers of the contact's top category
--                               (contact_category_affinity), in their rank order.
-- Never an SKU the contact ever had on an order line, whatever its status: a cancelled or
-- returned item is not pitched again. Only SKUs sold in the bought-together window
-- (product_sales) are recommended: they have a name and a category, and are still sold.
-- Contacts with an order line or a recent view may have rows; the others have none.
--
-- Bounded work, so that no contact meets the whole catalogue: each seed SKU brings at most
-- recommendation_neighbours_per_sku (10) neighbours and the fallback at most the first
-- recommendation_bestsellers_per_category (10) bestsellers of the top category (a contact who
-- bought them all may get fewer than five). An SKU with several reasons keeps its first; the
-- SKUs a contact had are taken out by one anti-join of the candidates with its lines, the
-- only pass over every line.
{%- set per_contact = var('recommendations_per_contact') %}

with bought_lately as (
    select distinct
        contact_id,
        sku
    from {{ ref('int_order_lines') }}
    where
        status = 'completed'
        and contact_id is not null
        and sku is not null
        and ordered_on <= {{ as_of_date() }}
        and {{ days_before_as_of('ordered_on') }} < {{ var('recommendation_seed_days') }}
),

viewed as (
    select
        contact_id,
        sku,
        count(*) as view_count
    from {{ ref('int_web_events_recent') }}
    where
        event_name in ('view_item', 'add_to_cart')
        and contact_id is not null
        and sku is not null
    group by contact_id, sku
),

seeds as (
    select
        contact_id,
        sku
    from bought_lately
    union
    select
        contact_id,
        sku
    from viewed
),

bought_together as (
    select
        seeds.contact_id,
        together.related_sku as sku,
        sum(together.cosine) as score
    from seeds
    inner join {{ ref('products_bought_together') }} as together
        on seeds.sku = together.sku
    where together.neighbour_rank <= {{ var('recommendation_neighbours_per_sku') }}
    group by seeds.contact_id, together.related_sku
),

bestsellers as (
    select
        affinity.contact_id,
        sales.sku,
        sales.units_sold as score
    from {{ ref('contact_category_affinity') }} as affinity
    inner join {{ ref('product_sales') }} as sales
        on affinity.category = sales.category
    where
        affinity.category_rank = 1
        and sales.category_rank <= {{ var('recommendation_bestsellers_per_category') }}
),

candidates as (
    -- each SKU once per contact, under its first reason: an anti-join each, no sort
    select
        contact_id,
        sku,
        1 as tier,
        'viewed' as reason,
        view_count as score
    from viewed
    union all
    select
        bought_together.contact_id,
        bought_together.sku,
        2 as tier,
        'bought_together' as reason,
        bought_together.score
    from bought_together
    anti join viewed
        on bought_together.contact_id = viewed.contact_id and bought_together.sku = viewed.sku
    union all
    select
        bestsellers.contact_id,
        bestsellers.sku,
        3 as tier,
        'bestseller_in_top_category' as reason,
        bestsellers.score
    from bestsellers
    anti join viewed
        on bestsellers.contact_id = viewed.contact_id and bestsellers.sku = viewed.sku
    anti join bought_together
        on
            bestsellers.contact_id = bought_together.contact_id
            and bestsellers.sku = bought_together.sku
),

never_had as (
    select candidates.*
    from candidates
    anti join {{ ref('int_order_lines') }} as had
        on candidates.contact_id = had.contact_id and candidates.sku = had.sku
)

select
    never_had.contact_id,
    row_number() over (
        partition by never_had.contact_id
        order by never_had.tier asc, never_had.score desc, never_had.sku asc
    ) as recommendation_rank,
    never_had.sku,
    sales.product_name,
    sales.category,
    never_had.reason,
    cast(never_had.score as double) as score,
    {{ as_of_date() }} as as_of_date
from never_had
inner join {{ ref('product_sales') }} as sales on never_had.sku = sales.sku
qualify recommendation_rank <= {{ per_contact }}
