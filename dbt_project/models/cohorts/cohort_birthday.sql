-- Birthday: contacts whose birthday falls on D + offset. A 29 February birthday is
-- celebrated on 28 February in years without a 29 February, and only on the 29th in leap years.
with target as (
    select
        {{ add_days(as_of_date(), var('birthday_offset_days')) }} as birthday_on
)

select
    members.contact_id,
    members.email,
    members.first_name,
    members.last_name,
    members.timezone,
    members.birth_date,
    target.birthday_on,
    members.as_of_date,
    {{ calendar_part('year', 'target.birthday_on') }} as birthday_year
from {{ ref('audience') }} as members
cross join target
where
    members.birth_date is not null
    and (
        (
            {{ calendar_part('month', 'members.birth_date') }} = {{ calendar_part('month', 'target.birthday_on') }}
            and {{ calendar_part('day', 'members.birth_date') }} = {{ calendar_part('day', 'target.birthday_on') }}
        )
        or (
            {{ calendar_part('month', 'members.birth_date') }} = 2
            and {{ calendar_part('day', 'members.birth_date') }} = 29
            and {{ calendar_part('month', 'target.birthday_on') }} = 2
            and {{ calendar_part('day', 'target.birthday_on') }} = 28
            -- a February without a 29th
            and {{ calendar_part('day', dbt.last_day('target.birthday_on', 'month')) }} = 28
        )
    )
