-- Welcome: a contact enters on the UTC date of its created_at, once (the occasion is the
-- contact itself), mailable or not: send_decisions judges that. The journey only reads
-- entries of its last days, so contacts created more than 400 days before D are left out to
-- keep the table small.
select
    contact_id,
    contact_id as occasion,
    {{ utc_date('created_at') }} as entered_on,
    -- a naive UTC timestamp, whatever the session time zone: orders after it end the journey
    {{ local_time("'UTC'", 'created_at') }} as entered_at,
    as_of_date
from {{ ref('audience') }}
where
    created_at is not null
    and {{ utc_date('created_at') }} <= {{ as_of_date() }}
    and {{ utc_date('created_at') }} > cast({{ dbt.dateadd('day', -400, as_of_date()) }} as date)
