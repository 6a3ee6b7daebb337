-- Who each order belongs to (docs/contract.md §2): its contact_id if it has one, even an
-- unknown or erased contact's; a guest order goes to the one non-erased contact with its normalized
-- email, and stays unattributed when none or several share that email.
with orders as (
    select * from {{ ref('int_orders_resolved') }}
),

email_owners as (
    select * from {{ ref('int_email_owners') }}
)

select
    orders.order_id,
    orders.ordered_at,
    orders.ordered_on,
    orders.status,
    orders.total_amount,
    orders.email,
    case
        when orders.contact_id is not null then orders.contact_id
        when email_owners.owner_count = 1 then email_owners.contact_id
    end as contact_id,
    case
        when orders.contact_id is not null then 'contact_id'
        when email_owners.owner_count = 1 then 'email'
        when email_owners.owner_count > 1 then 'ambiguous_email'
        else 'unattributed'
    end as attribution
from orders
left join email_owners
    on orders.contact_id is null and orders.email = email_owners.email
