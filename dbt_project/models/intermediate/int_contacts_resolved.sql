-- Each contact as of D: its latest version before the end of D, and whether it was ever
-- erased. An erasure is permanent, whatever later versions say (CONTRACT §2).
with versions as (
    select *
    from {{ ref('stg_crm__contacts') }}
    where
        business_date <= {{ as_of_date() }}
        and updated_at < {{ end_of_as_of_date() }}
),

erased as (
    select contact_id
    from versions
    group by contact_id
    having bool_or(is_deleted)
),

latest as (
    select *
    from versions
    qualify row_number() over (
        partition by contact_id
        order by updated_at desc, business_date desc, source_row desc
    ) = 1
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
    erased.contact_id is not null as is_erased,
    {{ is_valid_email('latest.email') }} as is_email_valid
from latest
left join erased on latest.contact_id = erased.contact_id
