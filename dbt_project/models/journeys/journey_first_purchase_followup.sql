-- First-purchase follow-up: var followup_days_after_first_order days after the contact's
-- first order ever (any status, as of D), if that order is still completed as of D: a first
-- order refunded or cancelled since gets no follow-up, and a later order does not take its
-- place. The occasion is the order itself. Follow-ups due more than 400 days before D are
-- left out: the journey reads a few days back.
with first_orders as (
    select
        contact_id,
        order_id,
        ordered_on,
        status
    from {{ ref('int_orders_attributed') }}
    where contact_id is not null and ordered_on <= {{ as_of_date() }}
    qualify row_number() over (partition by contact_id order by ordered_at asc, order_id asc) = 1
),

followups as (
    select
        contact_id,
        order_id,
        cast(
            {{ dbt.dateadd('day', var('followup_days_after_first_order'), 'ordered_on') }} as date
        ) as due_on
    from first_orders
    where status = 'completed'
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
