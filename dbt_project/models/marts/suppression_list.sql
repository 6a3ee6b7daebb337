-- Addresses never to mail again, each with its scope: `all` (every bounce, block, spam
-- report and global unsubscribe SendGrid reported, the addresses it refused, and those
-- suppressed by hand), or one topic (a group unsubscribe, or Nightjar's one-click
-- unsubscribe, stops only the topic it names).
-- Permanent: nothing here is ever lifted automatically. The one deliberate exception to
-- "as of D": an unsubscribe received after D ended but before D's send still stops the send.
{%- set groups = var('sendgrid_groups', {}) %}
with events as (
    select * from {{ ref('int_email_events_deduplicated') }}
    where event_name in ('bounce', 'spamreport', 'unsubscribe', 'group_unsubscribe')
),

contacts as (
    select
        contact_id,
        email
    from {{ ref('int_contacts_resolved') }}
),

reported as (
    select
        -- a one-click unsubscribe names the contact, not the address (nightjar webhook)
        coalesce(events.email, contacts.email) as email,
        events.event_timestamp as suppressed_at,
        case
            when events.event_name = 'bounce' and events.bounce_type = 'blocked' then 'blocked'
            when events.event_name = 'bounce' then 'bounce'
            when events.event_name = 'spamreport' then 'spam_report'
            else events.event_name
        end as reason,
        -- A group's id says its topic (NIGHTJAR_SENDGRID_GROUPS); a group Nightjar does not
        -- know, or an unsubscribe naming no topic, is taken as from everything.
        case
            when events.event_name <> 'group_unsubscribe' then 'all'
            {%- if groups %}
                when events.asm_group_id is not null then
                    case events.asm_group_id
                        {%- for group_id, topic in groups.items() %}
                            when {{ group_id | int }} then '{{ topic }}'
                        {%- endfor %}
                        else 'all'
                    end
            {%- else %}
                when events.asm_group_id is not null then 'all'
            {%- endif %}
            else coalesce(nullif(events.topic, ''), 'all')
        end as scope
    from events
    -- only an unsubscribe: a bounce whose address was erased must not suppress the
    -- contact's new address
    left join contacts
        on
            events.email is null
            and events.event_name = 'group_unsubscribe'
            and events.contact_id = contacts.contact_id
),

manual as (
    select
        {{ normalize_email('email') }} as email,
        suppressed_at,
        -- Nightjar adds an address SendGrid refused for good; any other row was added by hand
        case when reason = 'refused' then 'refused' else 'manual' end as reason,
        'all' as scope
    from {{ source('nightjar', 'suppressions') }}
    where {{ normalize_email('email') }} is not null
),

suppressions as (
    select * from reported
    where email is not null
    union all
    select * from manual
)

select
    email,
    scope,
    reason,
    suppressed_at
from (
    {{ first_row_per('suppressions', 'email, scope', 'suppressed_at, reason', [
        'email', 'scope', 'reason', 'suppressed_at'
    ]) }}
) as earliest
