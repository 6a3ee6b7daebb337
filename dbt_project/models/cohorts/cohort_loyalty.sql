-- Loyalty: contacts who bought recently and spent a lot in two years. Its occasion
-- is entering the cohort: entered_on carries over from the previous recorded membership, so
-- a contact who stays in the cohort keeps its occasion and is messaged once.
with members as (
    select *
    from {{ ref('audience') }}
    where
        days_since_last_purchase < {{ var('loyalty_max_days_since_purchase') }}
        and spend_730d > {{ var('loyalty_min_spend_730d') }}
),

previous_night as (
    -- the latest earlier date the cohort was recorded, even if it was empty that night
    select max(business_date) as business_date
    from {{ source('nightjar', 'cohort_snapshots') }}
    where cohort = 'cohort_loyalty' and business_date < {{ as_of_date() }}
),

previous as (
    select
        memberships.contact_id,
        memberships.entered_on
    from {{ source('nightjar', 'cohort_membership') }} as memberships
    inner join previous_night on memberships.business_date = previous_night.business_date
    where memberships.cohort = 'cohort_loyalty'
)

select
    members.contact_id,
    members.email,
    members.first_name,
    members.last_name,
    members.timezone,
    members.spend_730d,
    members.last_purchase_date,
    members.days_since_last_purchase,
    coalesce(previous.entered_on, {{ as_of_date() }}) as entered_on,
    members.as_of_date
from members
left join previous on members.contact_id = previous.contact_id
