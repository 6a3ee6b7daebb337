-- First-purchase follow-up: var followup_days_after_first_order days after the contact's
-- first order ever (any status, as of D), if that order is still completed as of D: a first
-- order refunded or cancelled since gets no follow-up, and a later order does not take its
-- place. The occasion is the order itself. Follow-ups due more than 400 days before D are
-- left out: the journey reads a few days back.
with followups as (
    -- the first order ever, from the purchases' summary (int_contacts_purchases_summarized)
    select
        contact_id,
        first_order_id as order_id,
        cast(
            {{ dbt.dateadd('day', var('followup_days_after_first_order'), 'first_order_on') }}
            as date
        ) as due_on
    from {{ ref('int_contacts_purchases_summarized') }}
    where first_order_status = 'completed'
)

select
    contact_id,
    order_id as occasion,
    due_on as entered_on,
    cast(due_on as timestamp) as entered_at,
    order_id as first_order_id,
    {{ as_of_date() }} as as_of_date
from followups
where
    due_on <= {{ as_of_date() }}
    and due_on > cast({{ dbt.dateadd('day', -400, as_of_date()) }} as date)
