-- Orders whose lines do not add up to their total within a cent (order_lines_mismatched):
-- a warning for the exporter's owner, never a refused night (docs/contract.md §1).
{{ config(severity='warn', meta={'dagster': {'ref': {'name': 'order_lines_mismatched'}}}) }}
select order_id
from {{ ref('order_lines_mismatched') }}
