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
-- recommendation_neighbours_per_sku (10) neighbours, and the fallback at most the first
-- recommendation_bestsellers_per_category (20) bestsellers of the top category (a contact who
-- bought them all may get fewer than five).
{%- set per_contact = var('recommendations_per_contact') %}

with contact_lines as (
    -- the one pass over the lines, one group per contact (not per contact and SKU: ten
    -- times fewer groups): every SKU it had on a line, whatever the status, and the SKUs it
    -- bought lately
    select
        contact_id,
        list(distinct sku) as had_skus,
        list(distinct sku) filter (
            where
            status = 'completed'
            and {{ days_before_as_of('ordered_on') }} < {{ var('recommendation_seed_days') }}
        ) as recent_skus
    from {{ ref('int_order_lines') }}
    where
        contact_id is not null
        and sku is not null
        and ordered_on <= {{ as_of_date() }}
    group by contact_id
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
        unnest(recent_skus) as sku
    from contact_lines
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

category_bestsellers as (
    select
        category,
        list(sku order by category_rank) as skus
    from {{ ref('product_sales') }}
    where category_rank <= {{ var('recommendation_bestsellers_per_category') }}
    group by category
),

bestsellers as (
    -- the top category's bestsellers the contact never had, the first few only: a list per
    -- contact rather than a row per contact and bestseller
    select
        contact_id,
        unnest(
            list_filter(
                category_bestsellers.skus,
                lambda sku: not list_contains(coalesce(contact_lines.had_skus, []), sku)  -- noqa: RF02
            )[1:{{ per_contact }}]
        ) as sku
    from {{ ref('contact_category_affinity') }} as affinity
    inner join category_bestsellers on affinity.category = category_bestsellers.category
    left join contact_lines using (contact_id)
    where affinity.category_rank = 1
),

candidates as (
    select
        contact_id,
        sku,
        1 as tier,
        'viewed' as reason,
        view_count as score
    from viewed
    union all
    select
        contact_id,
        sku,
        2 as tier,
        'bought_together' as reason,
        score
    from bought_together
),

had as (
    select
        contact_id,
        unnest(had_skus) as sku
    from contact_lines
),

never_had as (
    select candidates.*
    from candidates
    anti join had on candidates.contact_id = had.contact_id and candidates.sku = had.sku
    union all
    select
        bestsellers.contact_id,
        bestsellers.sku,
        3 as tier,
        'bestseller_in_top_category' as reason,
        sales.units_sold as score
    from bestsellers
    inner join {{ ref('product_sales') }} as sales on bestsellers.sku = sales.sku
),

best_reason as (
    -- an SKU with several reasons keeps its best one
    select
        contact_id,
        sku,
        arg_min(struct_pack(tier, reason, score), struct_pack(tier, minus_score := -score)) as best
    from never_had
    group by contact_id, sku
)

select
    best_reason.contact_id,
    row_number() over (
        partition by best_reason.contact_id
        order by
            struct_extract(best_reason.best, 'tier') asc,
            struct_extract(best_reason.best, 'score') desc,
            best_reason.sku asc
    ) as recommendation_rank,
    best_reason.sku,
    sales.product_name,
    sales.category,
    struct_extract(best_reason.best, 'reason') as reason,
    cast(struct_extract(best_reason.best, 'score') as double) as score,
    {{ as_of_date() }} as as_of_date
from best_reason
inner join {{ ref('product_sales') }} as sales on best_reason.sku = sales.sku
qualify recommendation_rank <= {{ per_contact }}
