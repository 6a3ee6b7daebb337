-- Web events as of D, each counted once, with the contact each visitor turned out to be: an
-- anonymous_id ever seen logged in belongs, with all its events, to the contact_id of its
-- latest event that carried one (docs/contract.md §2).
with visible as (
    select *
    from {{ ref('stg_web__events') }}
    where
        business_date <= {{ as_of_date() }}
        and event_timestamp < {{ end_of_as_of_date() }}
),

events as (
    {{ first_row_per('visible', 'event_id', 'business_date, source_row', [
        'event_id', 'event_timestamp', 'event_date', 'event_name', 'anonymous_id', 'page_url',
        'sku', 'value'
    ]) }}
)

select
    events.event_id,
    events.event_timestamp,
    events.event_date,
    events.event_name,
    events.anonymous_id,
    events.page_url,
    events.sku,
    events.value,
    visitors.contact_id
from events
left join {{ ref('int_web_visitors_summarized') }} as visitors
    on events.anonymous_id = visitors.anonymous_id
