-- Each order as of D: its latest version before the end of D (a refund is a later version).
select *
from {{ ref('stg_shop__orders') }}
where
    business_date <= {{ as_of_date() }}
    and updated_at < {{ end_of_as_of_date() }}
qualify row_number() over (
    partition by order_id
    order by updated_at desc, business_date desc, source_row desc
) = 1
