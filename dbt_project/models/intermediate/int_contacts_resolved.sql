-- Each contact as of D: its latest version before the end of D, and whether it was ever
-- erased. An erasure is permanent, whatever later versions say (docs/contract.md §2).
-- Incremental (macros/incremental.sql): a night reads the versions that became visible since
-- the last build, and the current row of each contact they touch.
{{ config(
    materialized=incremental_materialization(),
    unique_key='contact_id',
    post_hook="{{ record_incremental_build() }}"
) }}
{% set windowed = is_incremental() and var('incremental_since', none) is not none %}
{% set fields = [
    'contact_id', 'email', 'first_name', 'last_name', 'birth_date', 'country', 'timezone',
    'email_opt_in', 'created_at', 'updated_at', 'business_date', 'source_row', 'is_email_valid'
] %}

with landed as (
    select
        {{ fields | join(', ') }},
        is_deleted
    from {{ ref('stg_crm__contacts') }}
    where
        business_date <= {{ as_of_date() }}
        and updated_at < {{ end_of_as_of_date() }}
        and {{ incremental_window(windowed, 'business_date', 'updated_at') }}
),

versions as (
    select * from landed
    {% if windowed %}
        union all
        -- the contact's row so far stands for all its earlier versions
        select
            {{ fields | join(', ') }},
            is_erased as is_deleted
        from {{ this }}
        where contact_id in (select landed.contact_id from landed)
    {% endif %}
),

erased as (
    select contact_id
    from versions
    group by contact_id
    having bool_or(is_deleted)
),

latest as (
    {{ first_row_per(
        'versions', 'contact_id', 'updated_at desc, business_date desc, source_row desc',
        fields + ['is_deleted']
    ) }}
)

select
    latest.contact_id,
    latest.email,
    latest.first_name,
    latest.last_name,
    latest.birth_date,
    latest.country,
    latest.timezone,
    latest.email_opt_in,
    latest.created_at,
    latest.updated_at,
    latest.business_date,
    latest.source_row,
    latest.is_email_valid,  -- judged in staging, on the address as landed
    erased.contact_id is not null as is_erased
from latest
left join erased on latest.contact_id = erased.contact_id
