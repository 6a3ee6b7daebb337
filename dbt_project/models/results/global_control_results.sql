-- The whole program against the global control group (var global_control_share, a stable
-- draw withheld from every campaign and journey): the contacts mailable as of D in each
-- group, with their completed orders and revenue in the results_window_days to D, summed with
-- their squares so that the results asset can give each mean its interval.
with contacts as (
    select
        contact_id,
        {{ in_global_control('contact_id') }} as in_global_control
    from {{ ref('customer_360') }}
    where is_mailable
),

orders as (
    select
        contact_id,
        count(*) as orders,
        sum(total_amount) as revenue
    from {{ ref('int_orders_attributed') }}
    where
        status = 'completed'
        and ordered_on <= {{ as_of_date() }}
        and ordered_on > {{ dbt.dateadd('day', -var('results_window_days'), as_of_date()) }}
    group by contact_id
),

per_contact as (
    select
        contacts.in_global_control,
        coalesce(orders.orders, 0) as orders,
        cast(coalesce(orders.revenue, 0) as {{ type_double() }}) as revenue
    from contacts
    left join orders on contacts.contact_id = orders.contact_id
)

select
    case when in_global_control then 'global_control' else 'program' end as audience_group,
    count(*) as contacts,
    sum(orders) as orders,
    sum(orders * orders) as orders_squared,
    sum(revenue) as revenue,
    sum(revenue * revenue) as revenue_squared,
    {{ var('results_window_days') }} as window_days,
    {{ as_of_date() }} as as_of_date
from per_contact
group by in_global_control
