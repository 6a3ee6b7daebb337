-- The floor for `make bench`: the customer view and the cohorts as of $as_of, computed by
-- hand in plain DuckDB from the raw tables of the warehouse attached as `w`, with no dbt, no
-- Dagster and no checks. The same rules as the dbt project; tests/tools/bench.py compares the
-- cohorts' sizes with Nightjar's.
create temp table contacts as
with versions as (
    select *, nullif(lower(trim(email)), '') as address
    from w.raw.crm_contacts
    where business_date <= $as_of and updated_at < timezone('UTC', $as_of::timestamp + interval 1 day)
)
select
    contact_id,
    arg_max_null(address, (updated_at, business_date, source_row)) as email,
    arg_max_null(first_name, (updated_at, business_date, source_row)) as first_name,
    arg_max_null(last_name, (updated_at, business_date, source_row)) as last_name,
    arg_max_null(birth_date, (updated_at, business_date, source_row)) as birth_date,
    arg_max_null(timezone, (updated_at, business_date, source_row)) as timezone,
    arg_max_null(email_opt_in, (updated_at, business_date, source_row)) as email_opt_in,
    bool_or(is_deleted) as is_erased
from versions
group by contact_id;

create temp table owners as
select email, min(contact_id) as contact_id, count(*) as owner_count
from contacts
where not is_erased and email is not null
group by email;

create temp table purchases as
with orders as (
    select
        order_id,
        arg_max_null(contact_id, (updated_at, business_date, source_row)) as contact_id,
        arg_max_null(nullif(lower(trim(email)), ''), (updated_at, business_date, source_row)) as email,
        arg_max_null(ordered_at, (updated_at, business_date, source_row)) as ordered_at,
        arg_max_null(status, (updated_at, business_date, source_row)) as status,
        arg_max_null(total_amount, (updated_at, business_date, source_row)) as total_amount
    from w.raw.orders
    where business_date <= $as_of and updated_at < timezone('UTC', $as_of::timestamp + interval 1 day)
    group by order_id
),
attributed as (
    select
        coalesce(orders.contact_id, case when owners.owner_count = 1 then owners.contact_id end)
            as contact_id,
        cast(timezone('UTC', orders.ordered_at) as date) as ordered_on,
        orders.ordered_at,
        orders.total_amount
    from orders
    left join owners on orders.contact_id is null and orders.email = owners.email
    where orders.status = 'completed'
)
select
    contact_id,
    sum(total_amount) as total_spend,
    coalesce(sum(total_amount) filter (where date_diff('day', ordered_on, $as_of) < 730), 0)
        as spend_730d,
    count(*) filter (where date_diff('day', ordered_on, $as_of) < 730) as order_count_730d,
    max(ordered_on) as last_purchase_date,
    max(ordered_at) as last_purchase_at
from attributed
where contact_id is not null and ordered_on <= $as_of
group by contact_id;

create temp table web as
with events as (
    select *, cast(timezone('UTC', event_timestamp) as date) as event_date
    from w.raw.web_events
    where business_date <= $as_of and event_timestamp < timezone('UTC', $as_of::timestamp + interval 1 day)
),
visitors as (
    select anonymous_id, arg_max(contact_id, struct_pack(event_timestamp, event_id)) as contact_id
    from events
    where contact_id is not null
    group by anonymous_id
),
per_contact as (
    select
        visitors.contact_id,
        max(events.event_timestamp) as last_seen_at,
        max(events.event_timestamp) filter (where events.event_name = 'purchase') as web_purchase_at
    from events
    inner join visitors on events.anonymous_id = visitors.anonymous_id
    group by visitors.contact_id
),
recent as (
    select * from events
    where event_id in (select event_id from events where date_diff('day', event_date, $as_of) < 30)
    qualify row_number() over (partition by event_id order by business_date, source_row) = 1
)
select
    per_contact.contact_id,
    per_contact.last_seen_at,
    count(recent.event_id) filter (
        where recent.event_name = 'page_view' and date_diff('day', recent.event_date, $as_of) < 30
    ) as page_views_30d,
    count(recent.event_id) filter (
        where recent.event_name = 'add_to_cart' and date_diff('day', recent.event_date, $as_of) < 7
        and recent.event_timestamp > coalesce(
            greatest(per_contact.web_purchase_at, purchases.last_purchase_at), '-infinity')
    ) as cart_adds_7d
from per_contact
left join purchases on per_contact.contact_id = purchases.contact_id
left join visitors on per_contact.contact_id = visitors.contact_id
left join recent on visitors.anonymous_id = recent.anonymous_id
group by per_contact.contact_id, per_contact.last_seen_at;

create temp table customer_view as
with suppressed as (
    select distinct lower(trim(email)) as email from w.raw.sendgrid_events
    where event in ('bounce', 'spamreport', 'unsubscribe', 'group_unsubscribe')
    union select lower(trim(email)) from nightjar_state.main.suppressions
),
buyers as (
    select
        contact_id,
        rank() over (order by date_diff('day', last_purchase_date, $as_of) desc) as r_rank,
        rank() over (order by order_count_730d) as f_rank,
        rank() over (order by spend_730d) as m_rank,
        count(*) over () as buyer_count
    from purchases
    where order_count_730d > 0
      and contact_id in (select contact_id from contacts where not is_erased)
)
select
    contacts.*,
    suppressed.email is not null as is_suppressed,
    coalesce(purchases.total_spend, 0) as total_spend,
    coalesce(purchases.spend_730d, 0) as spend_730d,
    purchases.last_purchase_date,
    date_diff('day', purchases.last_purchase_date, $as_of) as days_since_last_purchase,
    1 + floor(5 * (buyers.r_rank - 1) / buyers.buyer_count) as r_score,
    1 + floor(5 * (buyers.f_rank - 1) / buyers.buyer_count) as f_score,
    1 + floor(5 * (buyers.m_rank - 1) / buyers.buyer_count) as m_score,
    web.last_seen_at,
    coalesce(web.page_views_30d, 0) as page_views_30d,
    coalesce(web.cart_adds_7d, 0) as cart_adds_7d
from contacts
left join suppressed on contacts.email = suppressed.email
left join purchases on contacts.contact_id = purchases.contact_id
left join buyers on contacts.contact_id = buyers.contact_id
left join web on contacts.contact_id = web.contact_id;

create temp table cohorts as
select 'cohort_loyalty' as cohort, contact_id from customer_view
where days_since_last_purchase < 90 and spend_730d > 1000
union all
select 'journey_winback', contact_id from customer_view
where last_purchase_date is not null and days_since_last_purchase >= 180
union all
select 'cohort_birthday', contact_id from customer_view
where not is_erased and birth_date between date '1900-01-01' and $as_of and (
    (month(birth_date) = month($as_of) and day(birth_date) = day($as_of))
    or (month(birth_date) = 2 and day(birth_date) = 29 and month($as_of) = 2
        and day($as_of) = 28 and day(last_day($as_of)) = 28)
)
