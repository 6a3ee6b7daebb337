-- Each order line as of D: of its versions, the one landed with its order's latest
-- updated_at (docs/contract.md §1). A version landed without its order counts as of the end
-- of its folder's date, so a correction of the lines alone still wins over older versions;
-- ties go to the later folder, then the later row.
-- Incremental (macros/incremental.sql), like int_orders_resolved: a night reads the line
-- versions that became visible since the last build, and the current lines of the orders
-- they touch, never the tens of millions of lines landed before.
{{ config(
    materialized=incremental_materialization(),
    unique_key=['order_id', 'line_id'],
    post_hook="{{ record_incremental_build() }}"
) }}
{% set windowed = is_incremental() and var('incremental_since', none) is not none %}
{% set since = incremental_since_date() if windowed else none %}
-- the ref read only in an incremental night:
-- depends_on: {{ ref('stg_shop__orders') }}

{%- set line_columns -%}
    business_date,
    source_row,
    order_id,
    line_id,
    sku,
    product_name,
    category,
    quantity,
    unit_price,
    coalesce(
        order_updated_at,
        {{ utc_midnight(add_days('business_date', 1)) }}
    ) as version_at
{%- endset %}
{% set columns = [
    'business_date', 'source_row', 'order_id', 'line_id', 'sku', 'product_name', 'category',
    'quantity', 'unit_price', 'version_at'
] %}

with landed as (
    select {{ line_columns }}
    from {{ ref('stg_shop__order_lines') }}
    where
        business_date <= {{ as_of_date() }}
        -- a version landed with an order version not visible as of D is not visible either
        and (order_updated_at is null or order_updated_at < {{ end_of_as_of_date() }})
    {% if windowed %}
        and business_date > {{ since }}
    {% endif %}
    {% if windowed %}
        -- and those landed by S with an order version stamped after S, which S could not
        -- see: found among the orders first (a condition on the joined updated_at would read
        -- the whole join of 25 million lines with their orders, seconds each night)
        union all
        select {{ line_columns }}
        from {{ ref('stg_shop__order_lines') }} as lines
        where
            order_updated_at < {{ end_of_as_of_date() }}
            and exists (
                select 1
                from {{ ref('stg_shop__orders') }} as late
                where
                    late.business_date <= {{ since }}
                    and late.updated_at >= {{ utc_midnight(add_days(since, 1)) }}
                    and late.business_date = lines.business_date
                    and late.order_id = lines.order_id
            )
    {% endif %}
),

versions as (
    {{ landed_and_kept_versions(windowed, 'order_id', columns) }}
),

latest as (
    {{ first_row_per(
        'versions', 'order_id, line_id', 'version_at desc, business_date desc, source_row desc',
        columns
    ) }}
)

select
    latest.*,
    -- the date of the build that wrote the row: a night's rows are the table's last blocks,
    -- which int_order_lines reads by this date instead of looking up 25 million lines
    {{ as_of_date() }} as written_on
from latest
