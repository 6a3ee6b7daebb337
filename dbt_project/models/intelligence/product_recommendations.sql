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
-- failed). So the heavy steps join, group and rank two integers a pair: the SKU's key (its
-- place in the catalogue) and the contact's, a 64-bit hash of its id, computed where the
-- rows are read, so that the 25 million lines meet no table of contacts. Two contacts of a
-- million share a hash about once in 2^25 nights; they would then share their candidates
-- and their exclusions (still never an SKU either of them had), and an SKU both viewed
-- could be listed twice. The names come back for the five kept. The defaults of the two
-- depths above are what a night at that size fits in the gigabyte (10 and 10 did not).
{%- set per_contact = var('recommendations_per_contact') %}

with catalogue as (
    -- the SKUs that may be recommended, keyed in their order (a tie of scores goes by SKU)
    select
        sku,
        product_name,
        category,
        units_sold,
        category_rank,
        -- narrow keys and tiers: the joins, groups and ranking of millions of pairs hold
        -- them all (as bigints, a second more at a million contacts)
        cast(row_number() over (order by sku) as integer) as sku_key
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

recent_lines as (
    -- the completed lines of the seed window, a few blocks of the table (it is in date order)
    select
        order_lines.contact_id,
        catalogue.sku_key
    from {{ ref('int_order_lines') }} as order_lines
    inner join catalogue on order_lines.sku = catalogue.sku
    where
        order_lines.status = 'completed'
        and order_lines.contact_id is not null
        and order_lines.ordered_on <= {{ as_of_date() }}
        and order_lines.ordered_on
        > cast({{ dbt.dateadd('day', -var('recommendation_seed_days'), as_of_date()) }} as date)
),

viewed as (
    select
        web_events.contact_id,
        catalogue.sku_key,
        count(*) as view_count
    from {{ ref('int_web_events_recent') }} as web_events
    inner join catalogue on web_events.sku = catalogue.sku
    where
        web_events.event_name in ('view_item', 'add_to_cart')
        and web_events.contact_id is not null
    group by web_events.contact_id, catalogue.sku_key
),

top_category as (
    select
        contact_id,
        category
    from {{ ref('contact_category_affinity') }}
    where category_rank = 1
),

contacts as (
    -- every contact a reason may give a recommendation, by its key
    select
        contact_id,
        {{ contact_key('contact_id') }} as contact_key
    from (
        select contact_id from recent_lines
        union
        select contact_id from viewed
        union
        select contact_id from top_category
    ) as recommendable
),

viewed_pairs as (
    select
        {{ contact_key('contact_id') }} as contact_key,
        sku_key,
        cast(view_count as {{ type_double() }}) as score
    from viewed
),

seeds as (
    -- the SKUs each contact bought lately or viewed, each once
    select distinct
        contact_key,
        sku_key
    from (
        select
            {{ contact_key('contact_id') }} as contact_key,
            sku_key
        from recent_lines
        union all
        select
            contact_key,
            sku_key
        from viewed_pairs
    ) as seed_skus
),

together_pairs as (
    -- a neighbour's cosines summed over the seeds that bring it, in decimals: a sum of
    -- doubles depends on the order DuckDB's threads add them in, and a tie of two sums
    -- could then rank either SKU first from one run to the next
    select
        seeds.contact_key,
        neighbours.related_key as sku_key,
        cast(sum(neighbours.cosine) as {{ type_double() }}) as score
    from seeds
    inner join neighbours on seeds.sku_key = neighbours.sku_key
    group by seeds.contact_key, neighbours.related_key
),

bestseller_pairs as (
    select
        {{ contact_key('top_category.contact_id') }} as contact_key,
        catalogue.sku_key,
        cast(catalogue.units_sold as {{ type_double() }}) as score
    from top_category
    inner join catalogue on top_category.category = catalogue.category
    where catalogue.category_rank <= {{ var('recommendation_bestsellers_per_category') }}
),

scored as (
    -- each SKU once per contact, under its first reason: 1 viewed, 2 bought together,
    -- 3 bestseller (an anti-join each: one sum over millions of rows, no other grouping)
    select
        contact_key,
        sku_key,
        cast(1 as smallint) as tier,
        score
    from viewed_pairs
    union all
    select
        together_pairs.contact_key,
        together_pairs.sku_key,
        cast(2 as smallint) as tier,
        together_pairs.score
    from together_pairs
    where
        not exists (
            select 1 from viewed_pairs
            where
                together_pairs.contact_key = viewed_pairs.contact_key
                and together_pairs.sku_key = viewed_pairs.sku_key
        )
    union all
    select
        bestseller_pairs.contact_key,
        bestseller_pairs.sku_key,
        cast(3 as smallint) as tier,
        bestseller_pairs.score
    from bestseller_pairs
    where
        not exists (
            select 1 from viewed_pairs
            where
                bestseller_pairs.contact_key = viewed_pairs.contact_key
                and bestseller_pairs.sku_key = viewed_pairs.sku_key
        )
        and not exists (
            select 1 from together_pairs
            where
                bestseller_pairs.contact_key = together_pairs.contact_key
                and bestseller_pairs.sku_key = together_pairs.sku_key
        )
),

had as (
    -- every SKU on any of the contact's order lines, whatever its status
    select
        {{ contact_key('order_lines.contact_id') }} as contact_key,
        catalogue.sku_key
    from {{ ref('int_order_lines') }} as order_lines
    inner join catalogue on order_lines.sku = catalogue.sku
    where order_lines.contact_id is not null
),

ranked {{ materialized() }} (
    -- by reason, then score, then SKU (its key follows the SKU's order); materialized, so
    -- that the names are joined to the kept rows only (joined earlier, the plan needed more
    -- than the gigabyte)
    select *
    from (
        select
            scored.contact_key,
            scored.sku_key,
            scored.tier,
            scored.score,
            row_number() over (
                partition by scored.contact_key
                order by scored.tier asc, scored.score desc, scored.sku_key asc
            ) as recommendation_rank
        -- the candidates no line of the contact holds: a left join kept where nothing
        -- matched, which DuckDB ran in a tenth less time than NOT EXISTS over the 24 M lines
        from scored
        left join had on scored.contact_key = had.contact_key and scored.sku_key = had.sku_key
        where had.contact_key is null
    ) as numbered
    where recommendation_rank <= {{ per_contact }}
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
