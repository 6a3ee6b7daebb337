-- Win-back: contacts who bought before but not for reactivation_min_days_since_purchase
-- days, as the reactivation cohort was. The occasion is the lapse, named by its last
-- purchase date (a new purchase starts a new lapse). Every night the lapse lasts it is listed
-- as entering on D: the journey's state keeps the first night it was seen. The template's
-- last_purchase_date is customer_360's, so it is not selected here. A lapse the one-shot
-- `reactivation` campaign (which this journey replaced) already messaged or held out does not
-- enter: an installation upgraded mid-lapse never mails it twice. Where the customer-value
-- model still gives the contact even odds of buying again (p_alive at or above var
-- winback_max_p_alive), it is only between purchases and does not enter yet; without a
-- prediction (no fit tonight, or no purchase in the fitting window), and for a one-time buyer,
-- whom BG/NBD holds alive by construction (it can only leave after a repeat purchase), the
-- lapse alone decides.
select
    audience.contact_id,
    audience.last_purchase_date as occasion,
    {{ as_of_date() }} as entered_on,
    cast({{ as_of_date() }} as timestamp) as entered_at,
    audience.as_of_date
from {{ ref('audience') }} as audience
where
    audience.last_purchase_date is not null
    and audience.days_since_last_purchase >= {{ var('reactivation_min_days_since_purchase') }}
    and (
        audience.p_alive is null
        or audience.p_alive < {{ var('winback_max_p_alive') }}
        or audience.order_count = 1
    )
    and not exists (
        select 1
        from {{ source('nightjar', 'send_ledger') }} as reactivation
        where
            reactivation.campaign = 'reactivation'
            and reactivation.contact_id = audience.contact_id
            and reactivation.occasion = cast(audience.last_purchase_date as {{ dbt.type_string() }})
    )
