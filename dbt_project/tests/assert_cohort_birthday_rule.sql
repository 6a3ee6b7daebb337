-- Every birthday member has its birthday (or 29 February's stand-in) on D + offset,
-- and every such contact is a member. Written independently of the model, by day of year.
{{ config(meta={'dagster': {'ref': {'name': 'cohort_birthday'}}}) }}
with target as (
    select cast({{ as_of_date() }} + to_days({{ var('birthday_offset_days') }}) as date) as birthday_on
),

expected as (
    select members.contact_id
    from {{ ref('audience') }} as members
    cross join target
    where
        (
            strftime(members.birth_date, '%m-%d') = strftime(target.birthday_on, '%m-%d')
            or (
                strftime(members.birth_date, '%m-%d') = '02-29'
                and strftime(target.birthday_on, '%m-%d') = '02-28'
                and strftime(target.birthday_on + interval 1 day, '%m-%d') = '03-01'
            )
        )
),

actual as (
    select contact_id from {{ ref('cohort_birthday') }}
),

{{ cohort_mismatches('expected', 'actual') }}
