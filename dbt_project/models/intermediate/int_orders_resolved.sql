-- Each order as of D: its latest version before the end of D (a refund is a later version).
select
    order_id,
    contact_id,
    email,
    ordered_at,
    ordered_on,
    updated_at,
    status,
    currency,
    total_amount
from {{ ref('stg_shop__orders') }}
where
    business_date <= {{ as_of_date() }}
    and updated_at < {{ end_of_as_of_date() }}
qualify row_number() over (
    partition by order_id
    order by updated_at desc, business_date desc, source_row desc
) = 1
