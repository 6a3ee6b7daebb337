-- Per contact, what the BG/NBD and Gamma-Gamma models read as of D (models/clv.py): its
-- completed purchases dated in the last var clv_window_days days up to D, one purchase a
-- UTC day (orders of one day merge, their totals summed; refunded and cancelled orders do not
-- count). Times in weeks from the first purchase day of the window: frequency is the repeat
-- purchase days, recency_weeks the last one, tenure_weeks D itself (D has ended, so a
-- purchase on D has recency = tenure); repeat_value_mean the mean value of the repeat days.
with purchase_days as (
    select
        contact_id,
        ordered_on as purchase_day,
        sum(total_amount) as day_value
    from {{ ref('int_orders_attributed') }}
    where
        status = 'completed'
        and contact_id is not null
        and ordered_on <= {{ as_of_date() }}
        and ordered_on
        > cast({{ dbt.dateadd('day', -var('clv_window_days'), as_of_date()) }} as date)
    group by contact_id, ordered_on
),

per_contact as (
    select
        contact_id,
        count(*) as purchase_days,
        min(purchase_day) as first_purchase_day,
        max(purchase_day) as last_purchase_day,
        sum(day_value) as total_value,
        {{ first_by('day_value', ['purchase_day']) }} as first_day_value
    from purchase_days
    group by contact_id
)

select
    contact_id,
    purchase_days - 1 as frequency,
    -- in doubles: Spark divides by a literal 7.0 in decimals, to six places
    cast({{ days_between('first_purchase_day', 'last_purchase_day') }} as {{ type_double() }}) / 7
        as recency_weeks,
    cast({{ days_between('first_purchase_day', as_of_date()) }} as {{ type_double() }}) / 7
        as tenure_weeks,
    case
        when purchase_days > 1
            then cast(total_value - first_day_value as {{ type_double() }}) / (purchase_days - 1)
    end as repeat_value_mean,
    first_purchase_day,
    last_purchase_day,
    {{ as_of_date() }} as as_of_date
from per_contact
