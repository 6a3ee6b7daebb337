-- Reactivation: contacts who bought before but not for a long time. The occasion is
-- the lapse itself, named by its last purchase date: a new purchase starts a new lapse.
select
    contact_id,
    email,
    first_name,
    last_name,
    timezone,
    last_purchase_date,
    days_since_last_purchase,
    total_spend,
    as_of_date
from {{ ref('audience') }}
where
    last_purchase_date is not null
    and days_since_last_purchase >= {{ var('reactivation_min_days_since_purchase') }}
