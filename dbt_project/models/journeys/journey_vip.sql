-- VIP: contacts in the RFM segment var vip_segment (Champions), or with var vip_defined_by
-- = predicted_clv, the top tenth by predicted value of the next 12 months (customer_360's
-- predicted_clv_decile 1). As loyalty's cohort does, entering is judged against the members
-- recorded on the previous night the journey was sent (Nightjar records this model's members
-- then, as a cohort's): a member of that night keeps its entered_on, so one stay in the
-- segment is one occasion; anyone else enters on D.
with members as (
    select contact_id
    from {{ ref('audience') }}
    where
        {% if var('vip_defined_by') == 'predicted_clv' -%}
            predicted_clv_decile = 1
        {%- elif var('vip_defined_by') == 'rfm_segment' -%}
            rfm_segment = '{{ var("vip_segment") }}'
        {%- else -%}
            {{ exceptions.raise_compiler_error("var vip_defined_by: rfm_segment or predicted_clv") }}
        {%- endif %}
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
