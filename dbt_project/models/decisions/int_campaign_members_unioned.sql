-- Every member of every campaign's cohort, one row per (campaign, contact), with the campaign's
-- settings, and every journey step due tonight (journey_progress), one row per (journey,
-- contact) with its step. The campaigns and journeys come from the models' YAML blocks:
-- Nightjar reads them from the manifest and passes them as the var `campaigns`, so a new
-- cohort or journey needs no edit here. A journey step's occasion in the ledger is its
-- instance's occasion and the step: `<occasion>#<step>`. A program is paused by
-- `enabled: false` in its block, or for one run by the var `paused` (nightjar run --pause).
{%- set campaigns = var('campaigns', []) %}
{%- set paused = var('paused', []) %}
{%- if campaigns | length == 0 %}
    select
        cast(null as {{ dbt.type_string() }}) as campaign,
        cast(null as {{ dbt.type_string() }}) as cohort,
        cast(null as {{ dbt.type_string() }}) as contact_id,
        cast(null as {{ dbt.type_string() }}) as occasion,
        cast(null as integer) as priority,
        cast(null as {{ type_double() }}) as holdout_share,
        cast(null as integer) as send_hour,
        cast(null as integer) as cooldown_days,
        cast(null as {{ dbt.type_string() }}) as variant,
        cast(null as {{ dbt.type_string() }}) as step,
        cast(null as {{ dbt.type_string() }}) as journey_occasion,
        cast(null as {{ dbt.type_string() }}) as journey_outcome,
        cast(null as boolean) as in_control_group,
        cast(null as {{ dbt.type_string() }}) as topic,
        cast(null as boolean) as is_paused
    where false
{%- endif %}
{%- for campaign in campaigns %}
    {%- set journey = campaign.get('kind') == 'journey' %}
    {%- set arms = [] %}
    {%- if journey %}
        {%- for step in campaign.steps if step.variants %}
            {%- do arms.append((step.name, step.variants)) %}
        {%- endfor %}
        -- depends_on: {{ ref(campaign.cohort) }}
    {%- elif campaign.get('variants') %}
        {%- do arms.append((none, campaign.variants)) %}
    {%- endif %}
    select
        '{{ campaign.name }}' as campaign,
        '{{ campaign.cohort }}' as cohort,
        contact_id,
        {%- if journey %}
            occasion || '#' || step as occasion,
        {%- else %}
            cast({{ adapter.quote(campaign.occasion_column) }} as {{ dbt.type_string() }}) as occasion,
        {%- endif %}
        cast({{ campaign.get('priority') or 0 }} as integer) as priority,
        cast({{ campaign.get('holdout_share') if campaign.get('holdout_share') is not none
            else var('holdout_share') }} as {{ type_double() }}) as holdout_share,
        cast({{ campaign.get('send_hour') if campaign.get('send_hour') is not none
            else var('send_hour') }} as integer) as send_hour,
        cast({{ campaign.get('cooldown_days') or 0 }} as integer) as cooldown_days,
        '{{ campaign.get('topic') }}' as topic,
        {{ (campaign.get('enabled') is sameas false or campaign.name in paused) | lower }} as is_paused,
        {%- if arms %}
            {%- set bucket = stable_unit_hash(["'" ~ campaign.name ~ "'", 'contact_id',
                "'" ~ var('holdout_salt') ~ "'", "'variant'"]) %}
            coalesce(
                -- an A/B test that has a winner (nightjar.experiment_decisions) sends it alone
                (
                    select decided.winner
                    from {{ source('nightjar', 'experiment_decisions') }} as decided
                    where
                        decided.campaign = '{{ campaign.name }}'
                        and decided.step = {{ "progress.step" if journey else "''" }}
                        -- a variant renamed or removed since: the test starts anew
                        and decided.winner in (
                            {%- for step_name, variants in arms %}
                                {%- for variant in variants %}
                                    '{{ variant.name }}'{{ "," if not loop.last }}
                                {%- endfor %}{{ "," if not loop.last }}
                            {%- endfor %}
                        )
                ),
            case
                {%- for step_name, variants in arms %}
                    {%- set total = variants | map(attribute='weight') | sum %}
                    when {{ "step = '" ~ step_name ~ "'" if step_name else 'true' }} then
                    case
                        {%- set ns = namespace(running=0) %}
                        {%- for variant in variants[:-1] %}
                            {%- set ns.running = ns.running + variant.weight %}
                            when {{ bucket }} < {{ ns.running / total }} then '{{ variant.name }}'
                        {%- endfor %}
                        else '{{ variants[-1].name }}'
                    end
                {%- endfor %}
            end) as variant,
        {%- else %}
            cast(null as {{ dbt.type_string() }}) as variant,
        {%- endif %}
        {%- if journey %}
            step,
            occasion as journey_occasion,
            case when step_outcome <> 'due' then step_outcome end as journey_outcome,
            in_control_group
        from {{ ref('journey_progress') }} as progress
        where journey = '{{ campaign.name }}' and step is not null
        {%- else %}
            cast(null as {{ dbt.type_string() }}) as step,
            cast(null as {{ dbt.type_string() }}) as journey_occasion,
            cast(null as {{ dbt.type_string() }}) as journey_outcome,
            cast(null as boolean) as in_control_group
        from {{ ref(campaign.cohort) }}
        {%- endif %}
    {% if not loop.last %}union all{% endif %}
{%- endfor %}
