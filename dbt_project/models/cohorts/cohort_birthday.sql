-- Birthday: contacts whose birthday falls on D + offset. A 29 February birthday is
-- celebrated on 28 February in years without a 29 February, and only on the 29th in leap years.
with target as (
    select
        cast({{ as_of_date() }} + to_days({{ var('birthday_offset_days') }}) as date) as birthday_on
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
    year(target.birthday_on) as birthday_year
from {{ ref('audience') }} as members
cross join target
where
    members.birth_date is not null
    and (
        (
            month(members.birth_date) = month(target.birthday_on)
            and day(members.birth_date) = day(target.birthday_on)
        )
        or (
            month(members.birth_date) = 2
            and day(members.birth_date) = 29
            and month(target.birthday_on) = 2
            and day(target.birthday_on) = 28
            and day(last_day(target.birthday_on)) = 28  -- a February without a 29th
        )
    )
