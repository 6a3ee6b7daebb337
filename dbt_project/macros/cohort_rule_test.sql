{#- Rows of `expected` and `actual` (CTEs of contact_id) that are not in both, with the reason:
    the body of every cohort rule test. -#}
{% macro cohort_mismatches(expected, actual) -%}
missing as (
    select contact_id from {{ expected }}
    except
    select contact_id from {{ actual }}
),

unexpected as (
    select contact_id from {{ actual }}
    except
    select contact_id from {{ expected }}
)

select
    'missing from cohort' as problem,
    contact_id
from missing
union all
select
    'should not be in cohort' as problem,
    contact_id
from unexpected
{%- endmacro %}
