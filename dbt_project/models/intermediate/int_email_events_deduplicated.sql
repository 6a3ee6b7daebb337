-- SendGrid events, each once: the webhook may receive an event more than once. Not limited
-- to D: the suppression list must know every unsubscribe received before the send.
select
    sg_event_id,
    event_name,
    email,
    event_timestamp,
    event_date,
    sg_message_id,
    reason,
    bounce_type,
    asm_group_id,
    campaign,
    contact_id,
    send_id,
    topic
from {{ ref('stg_sendgrid__events') }}
qualify row_number() over (
    partition by coalesce(sg_event_id, md5(concat_ws('|', event_name, email, event_timestamp, send_id)))
    order by event_timestamp
) = 1
