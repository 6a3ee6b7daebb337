-- Everyone a cohort may select: every contact of customer_360, and erased contacts by their
-- identifier alone (with the purchase figures their orders still carry), so that a send
-- decision says "deleted" rather than leaving them out without a word. Cohorts select from
-- here; send_decisions reads unmailable_reason.
{#- customer_360's columns, where the build reads them (a template rendered without a
    warehouse, as sqlfluff's, sees none: its SQL is only parsed, never run) -#}
{%- set columns = [] %}
{%- if execute %}
    {%- for column in adapter.get_columns_in_relation(ref('customer_360')) %}
        {%- do columns.append(column.name) %}
    {%- endfor %}
{%- endif %}
{%- set erased_columns = [
    'contact_id', 'unmailable_reason', 'is_mailable', 'is_email_valid', 'email_opt_in',
    'is_suppressed', 'timezone', 'total_spend', 'spend_730d', 'order_count',
    'order_count_730d', 'last_purchase_date', 'days_since_last_purchase', 'as_of_date'
] %}

with erased as (
    select contact_id
    from {{ ref('int_contacts_resolved') }}
    where is_erased
),

erased_rows as (
    select
        erased.contact_id,
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
)

-- every column of customer_360: the erased contacts' rows fill in what they keep
select
    {{ columns | join(', ') if columns else '*' }},  -- noqa: AM04
    false as is_erased
from {{ ref('customer_360') }}

union all

select
    {% for column in columns -%}
    {{ 'erased_rows.' ~ column if column in erased_columns else 'null' }} as {{ column }},
    {% endfor -%}
    true as is_erased
from erased_rows
