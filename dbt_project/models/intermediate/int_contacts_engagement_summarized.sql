-- Email engagement per contact as of D, from SendGrid's events: the contact Nightjar sent
-- to (custom_args), or else the one contact with that address.
with events as (
    select *
    from {{ ref('int_email_events_deduplicated') }}
    where event_timestamp < {{ end_of_as_of_date() }}
),

email_owners as (
    select
        email,
        contact_id
    from {{ ref('int_email_owners') }}
    where owner_count = 1
),

attributed as (
    select
        events.event_name,
        events.event_timestamp,
        coalesce(events.contact_id, email_owners.contact_id) as contact_id
    from events
    left join email_owners on events.email = email_owners.email
)

select
    contact_id,
    count(*) filter (where event_name = 'delivered') as emails_delivered,
    count(*) filter (where event_name = 'open') as email_opens,
    count(*) filter (where event_name = 'click') as email_clicks,
    max(event_timestamp) filter (where event_name = 'open') as last_opened_at,
    max(event_timestamp) filter (where event_name = 'click') as last_clicked_at
from attributed
where contact_id is not null
group by contact_id
