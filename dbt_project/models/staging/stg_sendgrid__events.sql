select
    sg_event_id,
    event as event_name,
    {{ normalize_email('email') }} as email,
    event_timestamp,
    sg_message_id,
    reason,
    bounce_type,
    asm_group_id,
    campaign,
    contact_id,
    send_id,
    topic,
    {{ utc_date('event_timestamp') }} as event_date
from {{ source('raw', 'sendgrid_events') }}
