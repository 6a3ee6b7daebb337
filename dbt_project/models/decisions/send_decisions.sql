-- One contact policy for every campaign and journey step: for each cohort member and each
-- journey step due on D, whether it is messaged ('send') or why not. The first reason that
-- applies wins:
--   paused         the program is paused (enabled: false, or nightjar run --pause): its
--                  members are decided and nothing is recorded, so they stay due
--   too_late, condition_not_met   a journey step overdue by more than its journey's
--                  max_late_days, or whose condition (and its else steps') is false: skipped
--   deleted, invalid_email, opted_out, suppressed   the contact may not be mailed at all
--   unsubscribed_topic   the contact's address unsubscribed from the program's topic
--   global_control the contact is in the global control group (var global_control_share):
--                  withheld from every program, so that the whole program can be measured
--   already_sent   this occasion's message went out (or may have: its fate is being settled)
--   refused        the provider refused this occasion's address for good
--   baseline       this occasion was current on the baseline night (nightjar run --baseline):
--                  served before Nightjar, never messaged; it counts toward no cap or cooldown
--   cooling_down   a message of this campaign went (or was held out) within its cooldown_days
--   lower_priority the contact is due a higher-priority campaign today
--   capped         the frequency cap (per day and per 7 days, all campaigns) is reached
--   holdout        it would be messaged, but is in the campaign's control group (stable hash)
-- The control group is drawn last, from those who would be messaged, so that it is the same
-- kind of people as the messaged group: the results compare the two (models/results).
-- Messages get a send time: the campaign's local hour in the contact's time zone, the next
-- such moment after the decisions are made, moved out of the quiet hours.
{#- a message's hour on the local day of local_after -#}
{%- set due_hour = dbt.dateadd('hour', 'local_hour', dbt.date_trunc('day', 'local_after')) %}

with members as (
    select * from {{ ref('int_campaign_members_unioned') }}
),

contacts as (
    select
        contact_id,
        email,
        unmailable_reason,
        timezone
    from {{ ref('audience') }}
),

topic_unsubscribes as (
    select
        email,
        scope as topic
    from {{ ref('suppression_list') }}
    where scope <> 'all'
),

ledger as (
    select
        campaign,
        contact_id,
        occasion,
        business_date,
        status,
        status in ('in_flight', 'accepted', 'abandoned') as went_out
    from {{ source('nightjar', 'send_ledger') }}
),

messages_received as (
    -- what the frequency cap counts: every campaign's messages that went out on D and in the
    -- 7 days ending D, and those a control group member would have had in their place
    select
        contact_id,
        count(*) filter (where business_date = {{ as_of_date() }}) as messages_today,
        count(*) as messages_7d
    from ledger
    where
        (went_out or status = 'held_out')
        and business_date > {{ add_days(as_of_date(), -7) }}
        and business_date <= {{ as_of_date() }}
    group by contact_id
),

screened as (
    select
        members.*,
        this_occasion.status as ledger_status,
        coalesce(received.messages_today, 0) as messages_today,
        coalesce(received.messages_7d, 0) as messages_7d,
        contacts.timezone,
        case
            when members.is_paused then 'paused'
            when members.journey_outcome is not null then members.journey_outcome
            when contacts.unmailable_reason is not null then contacts.unmailable_reason
            when unsubscribed.email is not null then 'unsubscribed_topic'
            when {{ in_global_control('members.contact_id') }} then 'global_control'
            when this_occasion.went_out then 'already_sent'
            when this_occasion.status = 'refused' then 'refused'
            when this_occasion.status = 'held_out' then 'holdout'
            when this_occasion.status = 'baseline' then 'baseline'
            when this_occasion.status = 'skipped' then 'cooling_down'
            when exists (
                select 1
                from ledger as earlier
                where
                    earlier.campaign = members.campaign
                    and earlier.contact_id = members.contact_id
                    and (earlier.went_out or earlier.status = 'held_out')
                    and earlier.business_date > {{ add_days(as_of_date(), '-members.cooldown_days') }}
            ) then 'cooling_down'
        end as exclusion,
        -- a journey's control group was drawn at entry, for every step (journey_progress)
        coalesce(
            members.in_control_group,
            {{ stable_unit_hash(['members.campaign', 'members.contact_id', "'" ~ var('holdout_salt') ~ "'"]) }}
            < members.holdout_share
        ) as is_drawn_for_holdout
    from members
    inner join contacts on members.contact_id = contacts.contact_id
    left join ledger as this_occasion
        on
            members.campaign = this_occasion.campaign
            and members.contact_id = this_occasion.contact_id
            and members.occasion = this_occasion.occasion
    left join messages_received as received on members.contact_id = received.contact_id
    left join topic_unsubscribes as unsubscribed
        on contacts.email = unsubscribed.email and members.topic = unsubscribed.topic
),

ranked as (
    -- A control-group member takes its place in the day as if it had been messaged: the
    -- control group must get no other message than the messaged group does.
    select
        *,
        case
            when exclusion is null
                then row_number() over (
                    partition by contact_id, exclusion is null
                    order by priority desc, campaign asc
                )
        end as priority_rank,
        greatest(
            0,
            least(
                {{ var('max_messages_per_day') }} - messages_today,
                {{ var('max_messages_per_7_days') }} - messages_7d
            )
        ) as allowance
    from screened
),

decided as (
    select
        *,
        case
            when exclusion is not null then exclusion
            when priority_rank <= allowance and is_drawn_for_holdout then 'holdout'
            when priority_rank <= allowance then 'send'
            -- it would have gone, but earlier messages used up the allowance
            when priority_rank <= {{ var('max_messages_per_day') }} then 'capped'
            else 'lower_priority'
        end as decision
    from ranked
),

scheduled as (
    select
        *,
        {{ local_time('timezone', send_after()) }} as local_after,
        case
            when {{ in_quiet_hours('send_hour') }} then {{ var('quiet_hours_end') }}
            else send_hour
        end as local_hour
    from decided
),

timed as (
    -- the local moment each message is due: its hour on the day of local_after, or the
    -- next day once that hour has passed
    select
        *,
        case
            when {{ due_hour }} < local_after then {{ dbt.dateadd('day', 1, due_hour) }}
            else {{ due_hour }}
        end as local_send_at
    from scheduled
)

select
    campaign,
    cohort,
    contact_id,
    occasion,
    step,
    journey_occasion,
    decision,
    topic,
    -- also for a message whose request got no answer: if it turns out never to have gone, the
    -- send asset sends it as decided the night it was planned
    case when decision = 'send' or ledger_status = 'in_flight' then variant end as variant,
    case
        when decision = 'send' or ledger_status = 'in_flight'
            then {{ instant_at('timezone', 'local_send_at') }}
    end as send_at,
    -- past it, the provider would deliver at once, in the quiet hours: the send stops there
    case
        when decision = 'send' or ledger_status = 'in_flight'
            then {{ instant_at('timezone', next_quiet_hours_start('local_send_at')) }}
    end as deliver_by,
    priority,
    priority_rank,
    messages_today,
    messages_7d,
    ledger_status,
    {{ decided_at() }} as decided_at,
    {{ as_of_date() }} as as_of_date
from timed
