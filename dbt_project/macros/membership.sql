{#- The members a cohort (or a journey's entry model) had on the latest earlier night Nightjar
    recorded it, even a night it was empty, with the date each entered: what tells a member who
    stays from one who enters (docs/contract.md §3). Columns contact_id, entered_on. -#}
{% macro previous_members(cohort) -%}
    select
        memberships.contact_id,
        memberships.entered_on
    from {{ source('nightjar', 'cohort_membership') }} as memberships
    where
        memberships.cohort = '{{ cohort }}'
        and memberships.business_date = (
            select max(snapshots.business_date)
            from {{ source('nightjar', 'cohort_snapshots') }} as snapshots
            where snapshots.cohort = '{{ cohort }}' and snapshots.business_date < {{ as_of_date() }}
        )
{%- endmacro %}
