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
        or decisions.send_at > {{ dbt.dateadd('hour', 72, send_after()) }}
        -- quiet: the local hour is within (end - start) mod 24 hours after start; written
        -- apart from the model's macro so that one cannot vouch for itself
        or (
            {{ calendar_part('hour', local_time('contacts.timezone', 'decisions.send_at')) }}
            - {{ var('quiet_hours_start') }} + 24
        ) % 24
        < ({{ var('quiet_hours_end') }} - {{ var('quiet_hours_start') }} + 24) % 24
    )
