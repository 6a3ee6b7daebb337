select
    business_date,
    source_row,
    order_id,
    contact_id,
    ordered_at,
    updated_at,
    status,
    currency,
    total_amount,
    {{ normalize_email('email') }} as email,
    {{ utc_date('ordered_at') }} as ordered_on
from {{ source('raw', 'orders') }}
