-- Every message to send has a send time outside the quiet hours of its contact's time zone,
-- after the business date ended and within SendGrid's 72-hour scheduling limit.
{{ config(meta={'dagster': {'ref': {'name': 'send_decisions'}}}) }}
select
    decisions.campaign,
    decisions.contact_id,
    decisions.send_at
from {{ ref('send_decisions') }} as decisions
inner join {{ ref('audience') }} as contacts on decisions.contact_id = contacts.contact_id
where
    decisions.decision = 'send'
    and (
        decisions.send_at is null
        or decisions.send_at < {{ send_after() }}
        or decisions.send_at > {{ send_after() }} + interval 72 hour
        or {{ in_quiet_hours('hour(timezone(contacts.timezone, decisions.send_at))') }}
    )
