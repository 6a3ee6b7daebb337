-- Everyone a cohort may select: every contact of customer_360, and erased contacts by their
-- identifier alone (with the purchase figures their orders still carry), so that a send
-- decision says "deleted" rather than leaving them out without a word. Cohorts select from
-- here; send_decisions reads unmailable_reason.
with erased as (
    select contact_id
    from {{ ref('int_contacts_resolved') }}
    where is_erased
)

-- every column of customer_360: the erased contacts' rows fill in what they keep, by name
select
    *,  -- noqa: AM04
    false as is_erased
from {{ ref('customer_360') }}

union all by name

select
    erased.contact_id,
    true as is_erased,
    'deleted' as unmailable_reason,
    false as is_mailable,
    false as is_email_valid,
    false as email_opt_in,
    false as is_suppressed,
    '{{ var("default_timezone") }}' as timezone,
    {{ purchase_figures('purchases') }},
    {{ as_of_date() }} as as_of_date
from erased
left join {{ ref('int_contacts_purchases_summarized') }} as purchases
    on erased.contact_id = purchases.contact_id
