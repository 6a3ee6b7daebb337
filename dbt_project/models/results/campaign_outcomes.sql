-- What became of every message a campaign sent, and of every member it held out, for the
-- sends of the last results_window_days business dates, as of D. The conversion window
-- is the same for both groups: the conversion_window_days days after the business date the
-- send was decided for (a held-out member has no send time of its own).
with members as (
    select
        send_id,
        campaign,
        step,
        contact_id,
        variant,
        business_date as send_date,
        case when status = 'held_out' then 'holdout' else 'messaged' end as audience_group
    from {{ source('nightjar', 'send_ledger') }}
    where
        status in ('held_out', 'in_flight', 'accepted', 'abandoned')
        and business_date <= {{ as_of_date() }}
        and business_date > {{ add_days(as_of_date(), -var('results_window_days')) }}
),

email_events as (
    select
        send_id,
        bool_or(event_name = 'delivered') as is_delivered,
        bool_or(event_name = 'open') as is_opened,
        bool_or(event_name = 'click') as is_clicked,
        bool_or(event_name = 'bounce') as is_bounced,
        bool_or(event_name in ('unsubscribe', 'group_unsubscribe')) as is_unsubscribed,
        bool_or(event_name = 'spamreport') as is_spam_reported
    from {{ ref('int_email_events_deduplicated') }}
    where
        event_date <= {{ as_of_date() }}
        and send_id in (select members.send_id from members)
    group by send_id
),

-- only the days a window can reach: the order history is long, the windows are recent
recent_orders as (
    select
        contact_id,
        ordered_on,
        total_amount
    from {{ ref('int_orders_attributed') }}
    where
        status = 'completed'
        and ordered_on <= {{ as_of_date() }}
        and ordered_on > {{ add_days(as_of_date(), -var('results_window_days')) }}
),

conversions as (
    select
        members.send_id,
        count(*) as conversions,
        sum(orders.total_amount) as conversion_revenue
    from members
    inner join recent_orders as orders
        on
            members.contact_id = orders.contact_id
            and members.send_date < orders.ordered_on
            and {{ add_days('members.send_date', var('conversion_window_days')) }}
            >= orders.ordered_on
    group by members.send_id
)

select
    members.send_id,
    members.campaign,
    members.step,
    members.contact_id,
    members.variant,
    members.send_date,
    members.audience_group,
    coalesce(email_events.is_delivered, false) as is_delivered,
    coalesce(email_events.is_opened, false) as is_opened,
    coalesce(email_events.is_clicked, false) as is_clicked,
    coalesce(email_events.is_bounced, false) as is_bounced,
    coalesce(email_events.is_unsubscribed, false) as is_unsubscribed,
    coalesce(email_events.is_spam_reported, false) as is_spam_reported,
    coalesce(conversions.conversions, 0) > 0 as has_converted,
    coalesce(conversions.conversions, 0) as conversions,
    coalesce(conversions.conversion_revenue, 0) as conversion_revenue,
    -- the whole window has been seen: later nights cannot change this row's conversions
    {{ add_days('members.send_date', var('conversion_window_days')) }}
    <= {{ as_of_date() }} as is_window_complete,
    {{ as_of_date() }} as as_of_date
from members
left join email_events on members.send_id = email_events.send_id
left join conversions on members.send_id = conversions.send_id
