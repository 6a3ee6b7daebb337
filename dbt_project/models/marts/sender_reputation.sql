-- What the mailbox providers judge a sender by, over the reputation_window_days ending D:
-- for each campaign and journey, and over all the mail SendGrid reported (Nightjar's or
-- not, campaign null), the messages delivered and bounced (blocks included) and the spam
-- reports, with their rates. The send checks hold them against NIGHTJAR_MAX_SPAM_RATE and
-- NIGHTJAR_MAX_BOUNCE_RATE (assets/sends/reputation.py).
with events as (
    select
        campaign,
        event_name
    from {{ ref('int_email_events_deduplicated') }}
    where
        event_name in ('delivered', 'bounce', 'spamreport')
        -- nightjar send-test's messages (send_id test-...) judge nothing
        and (send_id is null or send_id not like 'test-%')
        and event_date <= {{ as_of_date() }}
        and event_date > {{ dbt.dateadd('day', -var('reputation_window_days'), as_of_date()) }}
),

counted as (
    select
        campaign,
        sum(case when event_name = 'delivered' then 1 else 0 end) as delivered,
        sum(case when event_name = 'bounce' then 1 else 0 end) as bounced,
        sum(case when event_name = 'spamreport' then 1 else 0 end) as spam_reports
    from events
    where campaign is not null
    group by campaign

    union all

    select
        cast(null as {{ dbt.type_string() }}) as campaign,
        sum(case when event_name = 'delivered' then 1 else 0 end) as delivered,
        sum(case when event_name = 'bounce' then 1 else 0 end) as bounced,
        sum(case when event_name = 'spamreport' then 1 else 0 end) as spam_reports
    from events
)

select
    campaign,
    coalesce(delivered, 0) as delivered,
    coalesce(bounced, 0) as bounced,
    coalesce(spam_reports, 0) as spam_reports,
    -- Google's and Yahoo's spam rate: reports per message delivered
    cast(coalesce(spam_reports, 0) as {{ type_double() }})
    / nullif(delivered, 0) as spam_rate,
    -- SendGrid's: bounces per message it tried to deliver
    cast(coalesce(bounced, 0) as {{ type_double() }})
    / nullif(coalesce(delivered, 0) + coalesce(bounced, 0), 0) as bounce_rate,
    {{ var('reputation_window_days') }} as window_days,
    {{ as_of_date() }} as as_of_date
from counted
