-- Each order line as of D: of its versions, the one landed with its order's latest
-- updated_at (docs/contract.md §1). A version landed without its order counts as of the end
-- of its folder's date, so a correction of the lines alone still wins over older versions;
-- ties go to the later folder, then the later row.
-- Incremental (macros/incremental.sql), like int_orders_resolved: a night reads the line
-- versions that became visible since the last build, and the current lines of the orders
-- they touch, never the tens of millions of lines landed before.
{{ config(
    materialized='incremental',
    unique_key=['order_id', 'line_id'],
    post_hook="{{ record_incremental_build() }}"
) }}
{% set windowed = is_incremental() and var('incremental_since', none) is not none %}

with landed as (
    select
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
            timezone('UTC', cast(business_date as timestamp) + interval 1 day)
        ) as version_at
    from {{ ref('stg_shop__order_lines') }}
    where
        business_date <= {{ as_of_date() }}
        -- a version landed with an order version not visible as of D is not visible either
        and (order_updated_at is null or order_updated_at < {{ end_of_as_of_date() }})
        and {{ incremental_window(windowed, 'business_date', 'order_updated_at') }}
),

versions as (
    {{ landed_and_kept_versions(windowed, 'order_id') }}
)

select *
from versions
qualify row_number() over (
    partition by order_id, line_id
    order by version_at desc, business_date desc, source_row desc
) = 1
