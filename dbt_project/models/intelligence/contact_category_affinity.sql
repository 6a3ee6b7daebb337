-- Each contact's top categories (affinity_top_categories, 3) by spend on completed order lines
-- in the affinity window ending D (affinity_window_days, 730): rank 1 is the contact's top
-- category. Only the first few are kept: they are what a message or an analyst uses, and all of
-- them (about nine a contact) would be a table of ten million rows to write each night. Only
-- completed lines count (a refund or cancellation takes the spend back, as in spend_730d);
-- lines without a contact or a category have no affinity to give. One pass over the lines,
-- grouped by contact and category.
--
-- Incremental (macros/incremental.sql): a night recomputes only the contacts whose lines in
-- the window changed (contacts_whose_lines_changed), a few percent of them; the pre-hook
-- first takes those contacts' rows out, so that a contact left with no category (its lines
-- refunded, or out of the window) keeps none. A full build starts from an empty table.
{%- set windowed = recomputes_changed_contacts() %}
{%- set window_days = var('affinity_window_days') %}
{{ config(
    materialized=incremental_materialization(),
    incremental_strategy='append',
    pre_hook="{{ delete_rows_to_recompute(
        'contact_id', contacts_whose_lines_changed, [var('affinity_window_days')],
        recomputes_changed_contacts()
    ) }}",
    post_hook=[
        "{{ record_incremental_build() }}",
        "{{ restamp_kept_rows() }}",
    ]
) }}

with spend as (
    select
        contact_id,
        category,
        -- money in DuckDB's sum type on every engine (PostgreSQL's sum has no scale)
        cast(sum(line_amount) as decimal(38, 4)) as category_spend,
        sum(quantity) as category_units,
        max(ordered_on) as last_purchased_on
    from {{ ref('int_order_lines') }}
    where
        status = 'completed'
        and contact_id is not null
        and category is not null
        and ordered_on <= {{ as_of_date() }}
        -- a range of the column: DuckDB skips the blocks of older lines by their dates
        and ordered_on > cast({{ dbt.dateadd('day', -window_days, as_of_date()) }} as date)
    {% if windowed %}
        and contact_id in ({{ contacts_whose_lines_changed(window_days) }})
    {% endif %}
    group by contact_id, category
),

ranked as (
    select
        contact_id,
        category,
        category_spend,
        category_units,
        last_purchased_on,
        -- null when every category cost nothing (free items only): a share of nothing
        -- in doubles: Spark divides decimals to six places
        cast(category_spend as {{ type_double() }})
        / nullif(sum(category_spend) over (partition by contact_id), 0) as share_of_spend,
        -- the most spent first; a tie goes to the most recent, then to the category's name,
        -- so that a re-run picks the same top category
        row_number() over (
            partition by contact_id
            order by category_spend desc, last_purchased_on desc, category asc
        ) as category_rank,
        {{ as_of_date() }} as as_of_date
    from spend
)

select * from ranked
where category_rank <= {{ var('affinity_top_categories') }}
