-- Birth dates outside 1900-01-01 .. D are treated as missing; this reports how many
-- (docs/contract.md §2).
{{ config(severity='warn', meta={'dagster': {'ref': {'name': 'customer_360'}}}) }}
select contact_id
from {{ ref('customer_360') }}
where is_birth_date_out_of_range
