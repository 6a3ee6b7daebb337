-- Who each normalized email belongs to as of D, among contacts not erased: one owner, or
-- several (then nobody's: guest orders and events with that address stay unattributed).
select
    email,
    min(contact_id) as contact_id,
    count(*) as owner_count
from {{ ref('int_contacts_resolved') }}
where not is_erased and email is not null
group by email
