-- Addresses never to mail again: every bounce, block, spam report, unsubscribe and group
-- unsubscribe SendGrid reported, the addresses it refused, and those suppressed by hand.
-- Permanent: nothing here is ever lifted automatically. The one deliberate exception to
-- "as of D": an unsubscribe received after D ended but before D's send still stops the send.
with reported as (
    select
        email,
        event_timestamp as suppressed_at,
        case
            when event_name = 'bounce' and bounce_type = 'blocked' then 'blocked'
            when event_name = 'bounce' then 'bounce'
            when event_name = 'spamreport' then 'spam_report'
            else event_name
        end as reason
    from {{ ref('int_email_events_deduplicated') }}
    where
        event_name in ('bounce', 'spamreport', 'unsubscribe', 'group_unsubscribe')
        and email is not null
),

manual as (
    select
        {{ normalize_email('email') }} as email,
        suppressed_at,
        -- Nightjar adds an address SendGrid refused for good; any other row was added by hand
        case when reason = 'refused' then 'refused' else 'manual' end as reason
    from {{ source('nightjar', 'suppressions') }}
    where {{ normalize_email('email') }} is not null
)

select
    email,
    reason,
    suppressed_at
from (
    select * from reported
    union all
    select * from manual
) as suppressions
qualify row_number() over (partition by email order by suppressed_at, reason) = 1
