-- VIP: contacts in the RFM segment var vip_segment (Champions). As loyalty's cohort does,
-- entering is judged against the members recorded on the previous night the journey was
-- sent (Nightjar records this model's members then, as a cohort's): a member of that night
-- keeps its entered_on, so one stay in the segment is one occasion; anyone else enters on D.
with members as (
    select contact_id
    from {{ ref('audience') }}
    where rfm_segment = '{{ var("vip_segment") }}'
),

previous as (
    {{ previous_members('journey_vip') }}
),

entries as (
    select
        members.contact_id,
        coalesce(previous.entered_on, {{ as_of_date() }}) as entered_on
    from members
    left join previous on members.contact_id = previous.contact_id
)

select
    contact_id,
    entered_on as occasion,
    entered_on,
    cast(entered_on as timestamp) as entered_at,
    {{ as_of_date() }} as as_of_date
from entries
