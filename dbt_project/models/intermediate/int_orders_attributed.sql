-- Who each order belongs to (docs/contract.md §2): its contact_id if it has one, even an
-- unknown or erased contact's; a guest order goes to the one non-erased contact with its normalized
-- email, and stays unattributed when none or several share that email.
--
-- A table, incremental (macros/incremental.sql), in date order: its readers take a few recent
-- days (journeys, results, the value model's inputs) and skip the blocks of other days by
-- their dates, where a view joined ten million orders to their owners again for each. A
-- night rewrites the orders it touched: a version that became visible since the last build,
-- and a guest order attributed by email to another contact than this table holds (contacts
-- come, change address or are erased).
--
-- The purchase summary recomputes only the contacts whose orders changed
-- (contacts_whose_orders_changed): each order says when a build last changed what it reads
-- (changed_on: its contact, status, time or amount; a rewrite that changes nothing keeps
-- the date) and its contact before (contact_id_before, the contact as of S, kept by every
-- rewrite since S: a failed night is read again from S), so that a guest order passed from
-- one contact to another is taken from the first as well as given to the second.
{{ config(
    materialized=incremental_materialization(),
    unique_key='order_id',
    post_hook="{{ record_incremental_build() }}"
) }}
{% set windowed = is_incremental() and var('incremental_since', none) is not none %}
-- the refs read only in an incremental night:
-- depends_on: {{ ref('stg_shop__orders') }}, {{ ref('stg_shop__order_lines') }}

with
{% if windowed %}
    landed as (
        {{ orders_touched_since_last_build() }}
    ),
{% endif %}

orders as (
    select
        order_id,
        ordered_at,
        ordered_on,
        status,
        total_amount,
        contact_id,
        email
    from {{ ref('int_orders_resolved') }}
    {% if windowed %}
        -- those the landing touched, and every guest order, whose owner may change without
        -- a new version
        where
            contact_id is null
            or order_id in (select landed.order_id from landed)
    {% endif %}
),

email_owners as (
    select * from {{ ref('int_email_owners') }}
),

attributed as (
    select
        orders.order_id,
        orders.ordered_at,
        orders.ordered_on,
        orders.status,
        orders.total_amount,
        case
            when orders.contact_id is not null then orders.contact_id
            when email_owners.owner_count = 1 then email_owners.contact_id
        end as contact_id,
        case
            when orders.contact_id is not null then 'contact_id'
            when email_owners.owner_count = 1 then 'email'
            when email_owners.owner_count > 1 then 'ambiguous_email'
            else 'unattributed'
        end as attribution
    from orders
    left join email_owners
        on orders.contact_id is null and orders.email = email_owners.email
)

{% if windowed %}
    , kept as (
        -- this table's rows of those orders: what a rewrite compares and keeps
        select
            order_id,
            contact_id,
            attribution,
            status,
            ordered_at,
            ordered_on,
            total_amount,
            changed_on,
            contact_id_before
        from {{ this }}
        where order_id in (select attributed.order_id from attributed)
    )

    select
        attributed.*,
        {{ changed_on_and_contact_before('kept', 'kept.order_id is null', [
            ('attributed.contact_id', 'contact_id'), ('attributed.status', 'status'),
            ('attributed.ordered_at', 'ordered_at'), ('attributed.ordered_on', 'ordered_on'),
            ('attributed.total_amount', 'total_amount'),
        ]) }}
    from attributed
    left join kept on attributed.order_id = kept.order_id
    -- a guest order whose owner did not change is not written again: most of them, most nights
    where
        attributed.order_id in (select landed.order_id from landed)
        or kept.order_id is null
        or attributed.contact_id is distinct from kept.contact_id
        -- an owner found or lost among several: no contact either way, but not the same row
        or attributed.attribution is distinct from kept.attribution
{% else %}
    select
        *,
        {{ as_of_date() }} as changed_on,
        cast(null as {{ dbt.type_string() }}) as contact_id_before
    from attributed
    -- in date order: a reader of some days skips the blocks of other days by their dates;
    -- later nights append their orders at the end, recent days mostly
    order by ordered_on
{% endif %}
