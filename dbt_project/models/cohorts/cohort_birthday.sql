-- Birthday: mailable contacts whose birthday falls on D + offset. A 29 February birthday is
-- celebrated on 28 February in years without a 29 February, and only on the 29th in leap years.
with target as (
    select
        cast({{ as_of_date() }} + to_days({{ var('birthday_offset_days') }}) as date) as day
)

select
    members.contact_id,
    members.email,
    members.first_name,
    members.last_name,
    members.timezone,
    members.birth_date,
    target.day as birthday_on,
    year(target.day) as birthday_year,
    members.as_of_date
from {{ ref('customer_360') }} as members
cross join target
where
    members.is_mailable
    and members.birth_date is not null
    and (
        (
            month(members.birth_date) = month(target.day)
            and day(members.birth_date) = day(target.day)
        )
        or (
            month(members.birth_date) = 2
            and day(members.birth_date) = 29
            and month(target.day) = 2
            and day(target.day) = 28
            and day(last_day(target.day)) = 28  -- a February without a 29th
        )
    )
