-- SendGrid events, each once: the webhook may receive an event more than once. Not limited
-- to D: the suppression list must know every unsubscribe received before the send.
with events as (
    select
        *,
        coalesce(
            sg_event_id, md5({{ joined_text(['event_name', 'email', 'event_timestamp', 'send_id']) }})
        ) as event_key
    from {{ ref('stg_sendgrid__events') }}
)

{{ first_row_per('events', 'event_key', 'event_timestamp', [
    'sg_event_id', 'event_name', 'email', 'event_timestamp', 'event_date', 'sg_message_id',
    'reason', 'bounce_type', 'asm_group_id', 'campaign', 'contact_id', 'send_id', 'topic'
]) }}
