select
    business_date,
    source_row,
    event_id,
    event_timestamp,
    event_name,
    anonymous_id,
    contact_id,
    page_url,
    sku,
    value,
    {{ utc_date('event_timestamp') }} as event_date
from {{ source('raw', 'web_events') }}
