-- First-order anniversary: every year on the anniversary of the contact's first completed
-- order (as of D), from the first anniversary on. Years are added on the calendar, so a
-- first order on 29 February is celebrated on 28 February in years without one
-- (2024-02-29 + 1 year = 2025-02-28) and on the 29th in leap years.
-- Only the anniversaries of the last 40 days: the journey reads a few days back, and a
-- window shorter than a year holds at most this calendar year's and last year's.
with first_orders as (
    select
        contact_id,
        first_purchase_date as first_order_on
    from {{ ref('int_contacts_purchases_summarized') }}
),

calendar_years as (
    select
        contact_id,
        first_order_on,
        {{ calendar_part('year', as_of_date()) }} - {{ calendar_part('year', 'first_order_on') }}
            as years_to_as_of_year
    from first_orders
),

candidates as (
    -- the anniversary in D's calendar year and the one a year before
    select
        contact_id,
        first_order_on,
        years_to_as_of_year as years_since_first_order
    from calendar_years
    union all
    select
        contact_id,
        first_order_on,
        years_to_as_of_year - 1 as years_since_first_order
    from calendar_years
),

anniversaries as (
    select
        contact_id,
        first_order_on,
        years_since_first_order,
        cast(
            {{ dbt.dateadd('year', 'years_since_first_order', 'first_order_on') }} as date
        ) as anniversary_on
    from candidates
    where years_since_first_order >= 1
)

select
    contact_id,
    {{ calendar_part('year', 'anniversary_on') }} as occasion,
    anniversary_on as entered_on,
    cast(anniversary_on as timestamp) as entered_at,
    years_since_first_order,
    first_order_on,
    {{ as_of_date() }} as as_of_date
from anniversaries
where
    anniversary_on <= {{ as_of_date() }}
    and anniversary_on > cast({{ dbt.dateadd('day', -40, as_of_date()) }} as date)
