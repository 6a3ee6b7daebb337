select
    business_date,
    source_row,
    contact_id,
    first_name,
    last_name,
    birth_date,
    upper(country) as country,
    timezone,
    email_opt_in,
    created_at,
    updated_at,
    is_deleted,
    {{ normalize_email('email') }} as email,
    -- judged on the address as landed: see the macro for why not on the normalized one
    {{ is_valid_email('email') }} as is_email_valid
from {{ source('raw', 'crm_contacts') }}
