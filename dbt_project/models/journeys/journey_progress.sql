-- Every journey instance in play on D, one row per (journey, contact, occasion): the active
-- instances Nightjar's state holds and tonight's new entries, each with where it stands and
-- the step due tonight, if any (docs/contract.md §15). The journeys come from the entry
-- models' YAML blocks, passed by Nightjar as the var `campaigns`, so a new journey needs no
-- edit here. Which steps went is the send ledger's: a step counts once its ledger row is
-- settled (sent, held out, skipped...), never while it is only planned or failed.
--
-- Tonight's step: the next one in sequence, due `wait_days` after the previous step's night
-- (the first on the night of entry). A step more than max_late_days overdue is skipped
-- (too_late); a step whose condition is false goes as its `else` step, or is skipped
-- (condition_not_met). Before any step, an instance exits when its exit_when holds, when a
-- newer occasion replaces it (newer_entry_exits) or when its occasion was the baseline's.
{%- set journeys = [] %}
{%- for campaign in var('campaigns', []) %}
    {%- if campaign.get('kind') == 'journey' %}{% do journeys.append(campaign) %}{% endif %}
{%- endfor %}
{%- set went_out = "('in_flight', 'accepted', 'abandoned')" %}
{%- set settled = "('in_flight', 'accepted', 'abandoned', 'held_out', 'skipped', 'refused', "
    ~ "'withdrawn', 'baseline')" %}
{#- The columns each journey's rows carry: customer_360's (what a condition reads), the
    state's, and every journey's entry columns (null in another journey's rows). -#}
{%- set customer_columns = [] %}
{%- if execute and journeys %}
    {%- for column in adapter.get_columns_in_relation(ref('customer_360')) %}
        {%- if column.name not in ('contact_id', 'as_of_date') %}{% do customer_columns.append(column.name) %}{% endif %}
    {%- endfor %}
{%- endif %}
{%- set state_columns = [
    'journey', 'contact_id', 'occasion', 'entered_on', 'entered_at', 'in_control_group',
    'is_new_entry', 'days_since_entry', 'steps_done', 'steps_sent', 'last_step', 'last_step_on',
    'opened_last_step', 'clicked_last_step', 'completed_orders_since_entry', 'spend_since_entry',
    'last_web_purchase_at', 'next_position', 'due_on'
] %}
{%- set all_entry_columns = [] %}
{%- for journey in journeys %}
    {%- for column in journey.get('entry_columns', []) %}
        {%- if column not in all_entry_columns %}{% do all_entry_columns.append(column) %}{% endif %}
    {%- endfor %}
{%- endfor %}

{%- if journeys | length == 0 %}
    select
        cast(null as {{ dbt.type_string() }}) as journey,
        cast(null as {{ dbt.type_string() }}) as contact_id,
        cast(null as {{ dbt.type_string() }}) as occasion,
        cast(null as date) as entered_on,
        cast(null as timestamp) as entered_at,
        cast(null as boolean) as in_control_group,
        cast(null as boolean) as is_new_entry,
        cast(null as {{ dbt.type_string() }}) as status,
        cast(null as {{ dbt.type_string() }}) as end_reason,
        cast(null as integer) as steps_done,
        cast(null as integer) as steps_sent,
        cast(null as {{ dbt.type_string() }}) as last_step,
        cast(null as date) as last_step_on,
        cast(null as integer) as next_position,
        cast(null as date) as due_on,
        cast(null as {{ dbt.type_string() }}) as step,
        cast(null as {{ dbt.type_string() }}) as step_outcome,
        cast(null as integer) as total_steps,
        cast(null as date) as as_of_date
    where false
{%- else %}

with step_definitions as (
    select *
    from (
        values
        {%- for journey in journeys %}
            {%- set outer = loop %}
            {%- for step in journey.steps %}
                ('{{ journey.name }}', '{{ step.name }}', {{ step.position }},
                 {{ step.wait_days }}, {{ step.in_sequence }})
                {%- if not (outer.last and loop.last) %},{% endif %}
            {%- endfor %}
        {%- endfor %}
    ) as definitions (journey, step, position, wait_days, in_sequence)
),

journey_ledger as (
    -- each journey step's ledger row, with the instance's occasion it belongs to
    select
        ledger.campaign as journey,
        ledger.contact_id,
        left(ledger.occasion, length(ledger.occasion) - length(ledger.step) - 1) as occasion,
        ledger.step,
        definitions.position,
        ledger.business_date,
        ledger.status,
        ledger.send_id
    from {{ source('nightjar', 'send_ledger') }} as ledger
    inner join step_definitions as definitions
        on ledger.campaign = definitions.journey and ledger.step = definitions.step
    where ledger.step is not null and ledger.business_date <= {{ as_of_date() }}
),

known as (
    select *
    from {{ source('nightjar', 'journey_instances') }}
    where journey in (
        {%- for journey in journeys %}'{{ journey.name }}'{% if not loop.last %}, {% endif %}{% endfor -%}
    )
),

entries as (
    {%- for journey in journeys %}
        select
            '{{ journey.name }}' as journey,
            entry.contact_id,
            cast(entry.occasion as {{ dbt.type_string() }}) as occasion,
            cast(entry.entered_on as date) as entered_on,
            cast(entry.entered_at as timestamp) as entered_at
        from {{ ref(journey.cohort) }} as entry
        {%- if journey.countries %}
            inner join {{ ref('customer_360') }} as place
                on entry.contact_id = place.contact_id
                and upper(place.country) in ('{{ journey.countries | join("', '") }}')
        {%- endif %}
        where
            entry.entered_on <= {{ as_of_date() }}
            and entry.entered_on > {{ dbt.dateadd('day', -journey.lookback_days, as_of_date()) }}
        {% if not loop.last %}union all{% endif %}
    {%- endfor %}
),

journey_rules as (
    select *
    from (
        values
        {%- for journey in journeys %}
            ('{{ journey.name }}',
             {{ journey.reentry_after_days if journey.reentry_after_days is not none else 'null' }},
             {{ 'true' if journey.newer_entry_exits else 'false' }},
             cast({{ journey.holdout_share if journey.holdout_share is not none
                 else var('holdout_share') }} as {{ type_double() }}),
             {{ journey.max_late_days }})
            {%- if not loop.last %},{% endif %}
        {%- endfor %}
    ) as rules (journey, reentry_after_days, newer_replaces, holdout_share, max_late_days)
),

unseen as (
    -- entries Nightjar has not recorded yet, the latest of each contact and journey
    select entries.*
    from entries
    left join known
        on
            entries.journey = known.journey
            and entries.contact_id = known.contact_id
            and entries.occasion = known.occasion
    where known.journey is null
),

latest_unseen as (
    {{ first_row_per('unseen', 'journey, contact_id', 'entered_at desc, occasion desc', [
        'journey', 'contact_id', 'occasion', 'entered_on', 'entered_at'
    ]) }}
),

new_entries as (
    -- re-entry: `never` once any instance of the journey was recorded, or not within
    -- reentry_after_days of the previous entry; an active instance blocks a new one, unless
    -- a newer occasion replaces it (newer_entry_exits)
    select
        unseen.*,
        {{ stable_unit_hash(['unseen.journey', 'unseen.contact_id', "'" ~ var('holdout_salt') ~ "'"]) }}
        < rules.holdout_share as in_control_group
    from latest_unseen as unseen
    inner join journey_rules as rules on unseen.journey = rules.journey
    where not exists (
        select 1
        from known
        where
            known.journey = unseen.journey
            and known.contact_id = unseen.contact_id
            and (
                (known.status = 'active' and not rules.newer_replaces)
                or (
                    not (known.status = 'active' and rules.newer_replaces)
                    and (
                        rules.reentry_after_days is null
                        or known.entered_on
                        > {{ dbt.dateadd('day', '-rules.reentry_after_days', 'unseen.entered_on') }}
                    )
                )
            )
    )
),

instances as (
    -- the active instances, and those whose last step was decided within max_late_days:
    -- Nightjar's state calls an instance finished before its last message leaves, and a
    -- message that then failed, or a run killed before it left, is for the ledger to settle
    -- (a step not settled there goes again, as any other)
    select
        known.journey,
        known.contact_id,
        known.occasion,
        known.entered_on,
        cast(known.entered_at as timestamp) as entered_at,
        known.in_control_group,
        false as is_new_entry
    from known
    inner join journey_rules as rules on known.journey = rules.journey
    where
        known.status = 'active'
        or (
            known.status = 'finished'
            and known.ended_on
            >= {{ dbt.dateadd('day', '-(rules.max_late_days + 1)', as_of_date()) }}
        )
    union all
    select
        journey,
        contact_id,
        occasion,
        entered_on,
        entered_at,
        in_control_group,
        true as is_new_entry
    from new_entries
),

replaced as (
    -- active instances a newer entry of the same contact ends
    select distinct
        older.journey,
        older.contact_id,
        older.occasion
    from instances as older
    inner join new_entries as newer
        on
            older.journey = newer.journey
            and older.contact_id = newer.contact_id
            and older.occasion <> newer.occasion
    where not older.is_new_entry
),

progress as (
    select
        instances.journey,
        instances.contact_id,
        instances.occasion,
        coalesce(max(ledger.position) filter (where ledger.status in {{ settled }}), 0)
            as steps_done,
        count(*) filter (where ledger.status in {{ went_out }}) as steps_sent,
        {{ last_by('ledger.step', ['ledger.position'], 'ledger.status in ' ~ settled) }}
            as last_step,
        max(ledger.business_date) filter (where ledger.status in {{ settled }}) as last_step_on,
        {{ last_by('ledger.send_id', ['ledger.position'], 'ledger.status in ' ~ went_out) }}
            as last_sent_id,
        bool_or(ledger.status = 'baseline') as was_baseline
    from instances
    left join journey_ledger as ledger
        on
            instances.journey = ledger.journey
            and instances.contact_id = ledger.contact_id
            and instances.occasion = ledger.occasion
    group by instances.journey, instances.contact_id, instances.occasion
),

last_step_engagement as (
    select
        send_id,
        bool_or(event_name = 'open') as is_opened,
        bool_or(event_name = 'click') as is_clicked
    from {{ ref('int_email_events_deduplicated') }}
    where send_id in (select progress.last_sent_id from progress)
    group by send_id
),

purchases_since_entry as (
    select
        instances.journey,
        instances.contact_id,
        instances.occasion,
        count(orders.order_id) as completed_orders_since_entry,
        coalesce(sum(orders.total_amount), 0) as spend_since_entry
    from instances
    inner join {{ ref('int_orders_attributed') }} as orders
        on
            instances.contact_id = orders.contact_id
            and orders.ordered_at > instances.entered_at
    where orders.status = 'completed' and orders.ordered_on <= {{ as_of_date() }}
    group by instances.journey, instances.contact_id, instances.occasion
),

last_web_purchases as (
    -- each contact's latest web purchase as of D: the visitors' summary has it, so that no
    -- web event is read here
    select
        contact_id,
        max(last_web_purchase_at) as last_web_purchase_at
    from {{ ref('int_web_visitors_summarized') }}
    where contact_id in (select instances.contact_id from instances)
    group by contact_id
),

state as (
    -- what a condition or exit_when reads besides customer_360 (models/journeys.py
    -- STATE_COLUMNS), and where each instance stands
    select
        instances.journey,
        instances.contact_id,
        instances.occasion,
        instances.entered_on,
        instances.entered_at,
        instances.in_control_group,
        instances.is_new_entry,
        {{ days_before_as_of('instances.entered_on') }} as days_since_entry,
        progress.steps_done,
        progress.steps_sent,
        progress.last_step,
        progress.last_step_on,
        coalesce(engagement.is_opened, false) as opened_last_step,
        coalesce(engagement.is_clicked, false) as clicked_last_step,
        coalesce(purchases.completed_orders_since_entry, 0) as completed_orders_since_entry,
        coalesce(purchases.spend_since_entry, 0) as spend_since_entry,
        web.last_web_purchase_at,
        progress.was_baseline,
        replaced.journey is not null as is_replaced,
        next_step.position as next_position,
        case
            when next_step.position = 1 then instances.entered_on
            else cast({{ dbt.dateadd('day', 'next_step.wait_days', 'progress.last_step_on') }} as date)
        end as due_on
    from instances
    inner join progress
        on
            instances.journey = progress.journey
            and instances.contact_id = progress.contact_id
            and instances.occasion = progress.occasion
    left join last_step_engagement as engagement on progress.last_sent_id = engagement.send_id
    left join purchases_since_entry as purchases
        on
            instances.journey = purchases.journey
            and instances.contact_id = purchases.contact_id
            and instances.occasion = purchases.occasion
    left join last_web_purchases as web on instances.contact_id = web.contact_id
    left join replaced
        on
            instances.journey = replaced.journey
            and instances.contact_id = replaced.contact_id
            and instances.occasion = replaced.occasion
    left join step_definitions as next_step
        on
            instances.journey = next_step.journey
            and next_step.in_sequence
            and next_step.position = progress.steps_done + 1
),

context as (
    -- what a condition or exit_when reads: each instance's state beside its customer view
    select
        {%- for column in customer_columns %}
            customers.{{ adapter.quote(column) }},
        {%- endfor %}
        state.*
    from state
    left join {{ ref('customer_360') }} as customers on state.contact_id = customers.contact_id
)

{%- for journey in journeys %}
    {%- set by_name = {} %}
    {%- for step in journey.steps %}{% do by_name.update({step.name: step}) %}{% endfor %}
    {%- set entry_columns = journey.get('entry_columns', []) %}
    {%- set sequence = journey.steps | selectattr('in_sequence') | list %}
    select
        {%- for column in customer_columns + state_columns %}
            decided.{{ adapter.quote(column) }},
        {%- endfor %}
        {%- for column in all_entry_columns %}
            {{ 'entry.' ~ adapter.quote(column) if column in entry_columns else 'null' }} as {{ adapter.quote(column) }},
        {%- endfor %}
        {{ sequence | length }} as total_steps,
        decided.status,
        decided.end_reason,
        case when decided.status = 'active' and decided.due_on <= {{ as_of_date() }}
            then decided.chosen_step end as step,
        case when decided.status = 'active' and decided.due_on <= {{ as_of_date() }}
            then decided.outcome end as step_outcome,
        {{ as_of_date() }} as as_of_date
    from (
        select
            context.*,
            case
                when context.was_baseline then 'exited'
                when context.is_replaced then 'exited'
                {%- if journey.exit_when %}
                    when coalesce(({{ journey.exit_when }}), false) then 'exited'
                {%- endif %}
                when context.next_position is null then 'finished'
                else 'active'
            end as status,
            case
                when context.was_baseline then 'baseline'
                when context.is_replaced then '{{ journey.newer_entry_exits }}'
                {%- if journey.exit_when %}
                    when coalesce(({{ journey.exit_when }}), false)
                        then '{{ journey.exit_reason }}'
                {%- endif %}
            end as end_reason,
            case
                {%- for step in sequence %}
                    when context.next_position = {{ step.position }} then
                    {%- set ns = namespace(current=step, chain=[]) %}
                    {%- for _ in journey.steps %}
                        {%- if ns.current is not none %}
                            {%- do ns.chain.append(ns.current) %}
                            {%- set ns.current = by_name.get(ns.current.else_step) if ns.current.else_step else none %}
                        {%- endif %}
                    {%- endfor %}
                    case
                        {%- for link in ns.chain %}
                            when {{ '(' ~ link.condition ~ ') is true' if link.condition else 'true' }}
                                then '{{ link.name }}'
                        {%- endfor %}
                        else '{{ step.name }}'
                    end
                {%- endfor %}
            end as chosen_step,
            case
                when {{ days_before_as_of('context.due_on') }} > {{ journey.max_late_days }}
                    then 'too_late'
                {%- for step in sequence %}
                    {%- set ns = namespace(current=step, conditions=[]) %}
                    {%- for _ in journey.steps %}
                        {%- if ns.current is not none %}
                            {%- do ns.conditions.append(ns.current.condition) %}
                            {%- set ns.current = by_name.get(ns.current.else_step) if ns.current.else_step else none %}
                        {%- endif %}
                    {%- endfor %}
                    {%- if none not in ns.conditions %}
                        when context.next_position = {{ step.position }}
                            and not ({% for condition in ns.conditions %}({{ condition }}) is true{% if not loop.last %} or {% endif %}{% endfor %})
                            then 'condition_not_met'
                    {%- endif %}
                {%- endfor %}
                else 'due'
            end as outcome
        from context
        where context.journey = '{{ journey.name }}'
    ) as decided
    {%- if entry_columns %}
        left join {{ ref(journey.cohort) }} as entry
            on
                decided.contact_id = entry.contact_id
                and decided.occasion = cast(entry.occasion as {{ dbt.type_string() }})
    {%- endif %}
    {% if not loop.last %}union all{% endif %}
{%- endfor %}
{%- endif %}
