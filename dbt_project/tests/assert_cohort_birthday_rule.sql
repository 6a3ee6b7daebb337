-- Every birthday member has its birthday (or 29 February's stand-in) on D + offset,
-- and every such contact is a member. Written independently of the model, by day of year.
{{ config(meta={'dagster': {'ref': {'name': 'cohort_birthday'}}}) }}
with target as (
    select {{ add_days(as_of_date(), var('birthday_offset_days')) }} as birthday_on
),

expected as (
    select members.contact_id
    from {{ ref('audience') }} as members
    cross join target
    where
        (
            {{ month_day('members.birth_date') }} = {{ month_day('target.birthday_on') }}
            or (
                {{ month_day('members.birth_date') }} = '02-29'
                and {{ month_day('target.birthday_on') }} = '02-28'
                and {{ month_day(add_days('target.birthday_on', 1)) }} = '03-01'
            )
        )
),

actual as (
    select contact_id from {{ ref('cohort_birthday') }}
),

{{ cohort_mismatches('expected', 'actual') }}
