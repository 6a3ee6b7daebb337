-- Each order as of D: its latest version before the end of D (a refund is a later version).
-- Incremental (macros/incremental.sql): a night reads the versions that became visible since
-- the last build, and the current row of each order they touch, never the whole history.
{{ config(
    materialized=incremental_materialization(),
    unique_key='order_id',
    post_hook="{{ record_incremental_build() }}"
) }}
{% set windowed = is_incremental() and var('incremental_since', none) is not none %}
{% set columns = [
    'business_date', 'source_row', 'order_id', 'contact_id', 'ordered_at', 'ordered_on',
    'updated_at', 'status', 'currency', 'total_amount', 'email'
] %}

with landed as (
    select
        business_date,
        source_row,
        order_id,
        contact_id,
        ordered_at,
        ordered_on,
        updated_at,
        status,
        currency,
        total_amount,
        -- only a guest order's address: it is attributed by it, the others by contact_id
        -- (and erasing a contact then never rewrites this table of millions)
        case when contact_id is null then email end as email
    from {{ ref('stg_shop__orders') }}
    where
        business_date <= {{ as_of_date() }}
        and updated_at < {{ end_of_as_of_date() }}
        and {{ incremental_window(windowed, 'business_date', 'updated_at') }}
),

versions as (
    {{ landed_and_kept_versions(windowed, 'order_id', columns) }}
),

latest as (
    {{ first_row_per(
        'versions', 'order_id', 'updated_at desc, business_date desc, source_row desc', columns
    ) }}
)

select
    latest.*,
    -- the date of the build that wrote the row: an incremental night's test of the key
    -- checks the orders it wrote, not all ten million at a million contacts (a second)
    {{ as_of_date() }} as written_on
from latest
