-- Win-back: contacts who bought before but not for reactivation_min_days_since_purchase
-- days, as the reactivation cohort was. The occasion is the lapse, named by its last
-- purchase date (a new purchase starts a new lapse). Every night the lapse lasts it is listed
-- as entering on D: the journey's state keeps the first night it was seen. The template's
-- last_purchase_date is customer_360's, so it is not selected here.
select
    contact_id,
    last_purchase_date as occasion,
    {{ as_of_date() }} as entered_on,
    cast({{ as_of_date() }} as timestamp) as entered_at,
    as_of_date
from {{ ref('audience') }}
where
    last_purchase_date is not null
    and days_since_last_purchase >= {{ var('reactivation_min_days_since_purchase') }}
