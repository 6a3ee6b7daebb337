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

previous as (
    {{ previous_members('cohort_loyalty') }}
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
