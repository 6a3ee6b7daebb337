-- Every member of every campaign's cohort, one row per (campaign, contact), with the campaign's
-- settings. The campaigns come from the cohorts' YAML blocks: Nightjar reads them from the
-- manifest and passes them as the var `campaigns`, so a new cohort needs no edit here.
{%- set campaigns = var('campaigns', []) %}
{%- if campaigns | length == 0 %}
    select
        cast(null as varchar) as campaign,
        cast(null as varchar) as cohort,
        cast(null as varchar) as contact_id,
        cast(null as varchar) as occasion,
        cast(null as integer) as priority,
        cast(null as double) as holdout_share,
        cast(null as integer) as send_hour,
        cast(null as integer) as cooldown_days,
        cast(null as varchar) as variant
    where false
{%- endif %}
{%- for campaign in campaigns %}
    {%- set weights = campaign.get('variants', []) | map(attribute='weight') | list %}
    {%- set total = weights | sum %}
    select
        '{{ campaign.name }}' as campaign,
        '{{ campaign.cohort }}' as cohort,
        contact_id,
        cast({{ adapter.quote(campaign.occasion_column) }} as varchar) as occasion,
        cast({{ campaign.get('priority') or 0 }} as integer) as priority,
        cast({{ campaign.get('holdout_share') if campaign.get('holdout_share') is not none
            else var('holdout_share') }} as double) as holdout_share,
        cast({{ campaign.get('send_hour') if campaign.get('send_hour') is not none
            else var('send_hour') }} as integer) as send_hour,
        cast({{ campaign.get('cooldown_days') or 0 }} as integer) as cooldown_days,
        {%- if weights %}
            {%- set bucket = stable_unit_hash(["'" ~ campaign.name ~ "'", 'contact_id',
                "'" ~ var('holdout_salt') ~ "'", "'variant'"]) %}
            case
                {%- set ns = namespace(running=0) %}
                {%- for variant in campaign.variants[:-1] %}
                    {%- set ns.running = ns.running + variant.weight %}
                    when {{ bucket }} < {{ ns.running / total }} then '{{ variant.name }}'
                {%- endfor %}
                else '{{ campaign.variants[-1].name }}'
            end as variant
        {%- else %}
            cast(null as varchar) as variant
        {%- endif %}
    from {{ ref(campaign.cohort) }}
    {% if not loop.last %}union all{% endif %}
{%- endfor %}
