-- Each anonymous visitor ever seen logged in, with the contact_id of its latest event that
-- carried one (CONTRACT §2); event_id breaks a tie of timestamps, so a re-run always picks
-- the same contact. A repeated event counts once or twice alike here: a latest is a latest.
select
    anonymous_id,
    arg_max(contact_id, struct_pack(event_timestamp, event_id)) as contact_id
from {{ ref('stg_web__events') }}
where
    business_date <= {{ as_of_date() }}
    and event_timestamp < {{ end_of_as_of_date() }}
    and contact_id is not null
group by anonymous_id
