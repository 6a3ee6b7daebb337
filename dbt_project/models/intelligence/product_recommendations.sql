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
-- recommendation_neighbours_per_sku (5) neighbours and the fallback at most the first
-- recommendation_bestsellers_per_category (5) bestsellers of the top category (a contact who
-- bought them all may get fewer than five). An SKU with several reasons keeps its first.
--
-- At a million contacts (730 days, 25 million lines) the candidates are some 10 million
-- (contact, SKU) rows, and the SKUs each contact had come from the 25 million lines: grouped,
-- joined and ranked on two strings they took 20 s and more than DuckDB's gigabyte (the night
-- failed). So each contact and each SKU that may be recommended tonight gets an integer key,
-- and the heavy steps join, group and rank one integer per pair (contact key × 2^32 + SKU
-- key); the names come back for the five kept. The defaults of the two depths above are
-- what a night at that size fits in the gigabyte (10 and 10 did not).
{%- set per_contact = var('recommendations_per_contact') %}
{%- set pair = 4294967296 %}

with catalogue as (
    -- the SKUs that may be recommended, keyed in their order (a tie of scores goes by SKU)
    select
        sku,
        product_name,
        category,
        units_sold,
        category_rank,
        row_number() over (order by sku) as sku_key
    from {{ ref('product_sales') }}
),

neighbours as (
    select
        seed.sku_key,
        related.sku_key as related_key,
        together.cosine
    from {{ ref('products_bought_together') }} as together
    inner join catalogue as seed on together.sku = seed.sku
    inner join catalogue as related on together.related_sku = related.sku
    where together.neighbour_rank <= {{ var('recommendation_neighbours_per_sku') }}
),

bought_lately as (
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

top_category as (
    select
        contact_id,
        category
    from {{ ref('contact_category_affinity') }}
    where category_rank = 1
),

contacts as (
    -- every contact a reason may give a recommendation, keyed
    select
        contact_id,
        row_number() over (order by contact_id) as contact_key
    from (
        select contact_id from bought_lately
        union
        select contact_id from viewed
        union
        select contact_id from top_category
    ) as recommendable
),

seeds as (
    select
        contacts.contact_key,
        catalogue.sku_key
    from (
        select
            contact_id,
            sku
        from bought_lately
        union
        select
            contact_id,
            sku
        from viewed
    ) as seed_skus
    inner join contacts on seed_skus.contact_id = contacts.contact_id
    inner join catalogue on seed_skus.sku = catalogue.sku
),

viewed_pairs as (
    select
        contacts.contact_key * {{ pair }} + catalogue.sku_key as pair_key,
        cast(viewed.view_count as double) as score
    from viewed
    inner join contacts on viewed.contact_id = contacts.contact_id
    inner join catalogue on viewed.sku = catalogue.sku
),

together_pairs as (
    -- a neighbour's cosines summed over the seeds that bring it
    select
        seeds.contact_key * {{ pair }} + neighbours.related_key as pair_key,
        sum(neighbours.cosine) as score
    from seeds
    inner join neighbours on seeds.sku_key = neighbours.sku_key
    group by seeds.contact_key * {{ pair }} + neighbours.related_key
),

bestseller_pairs as (
    select
        contacts.contact_key * {{ pair }} + catalogue.sku_key as pair_key,
        cast(catalogue.units_sold as double) as score
    from top_category
    inner join contacts on top_category.contact_id = contacts.contact_id
    inner join catalogue on top_category.category = catalogue.category
    where catalogue.category_rank <= {{ var('recommendation_bestsellers_per_category') }}
),

scored as (
    -- each SKU once per contact, under its first reason: 1 viewed, 2 bought together,
    -- 3 bestseller (an anti-join each: one sum over millions of rows, no other grouping)
    select
        pair_key,
        1 as tier,
        score
    from viewed_pairs
    union all
    select
        together_pairs.pair_key,
        2 as tier,
        together_pairs.score
    from together_pairs
    anti join viewed_pairs on together_pairs.pair_key = viewed_pairs.pair_key
    union all
    select
        bestseller_pairs.pair_key,
        3 as tier,
        bestseller_pairs.score
    from bestseller_pairs
    anti join viewed_pairs on bestseller_pairs.pair_key = viewed_pairs.pair_key
    anti join together_pairs on bestseller_pairs.pair_key = together_pairs.pair_key
),

had as (
    -- every SKU on any of the contact's order lines, whatever its status
    select contacts.contact_key * {{ pair }} + catalogue.sku_key as pair_key
    from {{ ref('int_order_lines') }} as order_lines
    inner join contacts on order_lines.contact_id = contacts.contact_id
    inner join catalogue on order_lines.sku = catalogue.sku
),

ranked as materialized (
    -- by reason, then score, then SKU (its key follows the SKU's order); materialized, so
    -- that the names are joined to the kept rows only (joined earlier, the plan needed more
    -- than the gigabyte)
    select
        scored.pair_key // {{ pair }} as contact_key,
        scored.pair_key % {{ pair }} as sku_key,
        scored.tier,
        scored.score,
        row_number() over (
            partition by scored.pair_key // {{ pair }}
            order by scored.tier asc, scored.score desc, scored.pair_key asc
        ) as recommendation_rank
    from scored
    anti join had on scored.pair_key = had.pair_key
    qualify recommendation_rank <= {{ per_contact }}
)

select
    contacts.contact_id,
    ranked.recommendation_rank,
    catalogue.sku,
    catalogue.product_name,
    catalogue.category,
    case ranked.tier
        when 1 then 'viewed'
        when 2 then 'bought_together'
        else 'bestseller_in_top_category'
    end as reason,
    ranked.score,
    {{ as_of_date() }} as as_of_date
from ranked
inner join contacts on ranked.contact_key = contacts.contact_key
inner join catalogue on ranked.sku_key = catalogue.sku_key
