-- The lines of the orders as of D that int_orders_attributed knows, with the order's
-- contact, dates and CURRENT status: a refunded or cancelled order's lines are not bought.
-- A recommender reads this interface; its columns are fixed (docs/contract.md §8).
--
-- A table, incremental (macros/incremental.sql): every reader of lines would otherwise join
-- some 25 million lines to the orders and their attribution again, each one of them, every
-- night. A night rewrites the lines of the orders it touched: an order or line version that
-- became visible since the last build, and a guest order whose attribution by email changed
-- (contacts come, change address or are erased).
--
-- Its per-contact readers recompute only the contacts whose lines changed
-- (contacts_whose_lines_changed): each line says when a build last changed what they read
-- (changed_on: its contact, status, date, product, quantity or price; a rewrite that changes
-- nothing keeps the date) and its contact before (contact_id_before, the contact as of S,
-- kept by every rewrite since S: a failed night is read again from S), so that a guest order
-- passed from one contact to another is taken from the first as well as given to the second.
{{ config(
    materialized=incremental_materialization(),
    unique_key=['order_id', 'line_id'],
    post_hook="{{ record_incremental_build() }}"
) }}
{% set windowed = is_incremental() and var('incremental_since', none) is not none %}
{# what a line is: read from int_order_lines_resolved, or as this table holds it #}
{% set line_columns = 'order_id, line_id, sku, product_name, category, quantity, unit_price' %}
-- the refs read only in an incremental night:
-- depends_on: {{ ref('stg_shop__orders') }}, {{ ref('stg_shop__order_lines') }}

{% if windowed %}
    with landed as (
        {{ orders_touched_since_last_build() }}
    ),

    attributed as (
        -- the orders read tonight, attributed once: those the landing touched, and every
        -- guest order, whose contact may change without a new version (a contact came,
        -- changed address or was erased)
        select * from {{ ref('int_orders_attributed') }}
        where
            attribution != 'contact_id'
            or order_id in (select landed.order_id from landed)
    ),

    written as (
        -- this table's lines of those orders, in one scan of its 25 million rows at a
        -- million contacts: the columns a rewrite compares and keeps
        select
            order_id,
            line_id,
            contact_id,
            status,
            ordered_on,
            sku,
            product_name,
            category,
            quantity,
            unit_price,
            changed_on,
            contact_id_before
        from {{ this }}
        where order_id in (select attributed.order_id from attributed)
    ),

    guest_orders_passed_on as (
        -- guest orders attributed tonight to another contact than their lines hold:
        -- rewriting every guest order's lines each night cost seconds at a million
        -- contacts, for the few hundred that change
        select attributed.order_id
        from attributed
        inner join (
            select distinct
                order_id,
                contact_id
            from written
        ) as lines_of
            on attributed.order_id = lines_of.order_id
        where
            attributed.attribution != 'contact_id'
            and attributed.contact_id is distinct from lines_of.contact_id
    ),

    touched as (
        select order_id from landed
        union
        select order_id from guest_orders_passed_on
    ),

    rewritten as (
        -- the lines int_order_lines_resolved wrote since S, every line of the orders whose
        -- line versions changed: the last blocks of its table, where looking up the
        -- touched orders' lines among its 25 million took a second and more
        select {{ line_columns }}
        from {{ ref('int_order_lines_resolved') }}
        where written_on > {{ incremental_since_date() }}
    ),

    lines_never_held as (
        -- touched orders of which neither holds a line: lines that landed before their
        -- order (none on most nights: the lookup below then reads nothing)
        select order_id from touched
        where
            order_id not in (select rewritten.order_id from rewritten)
            and order_id not in (select written.order_id from written)
    ),

    lines as (
        select * from rewritten
        where order_id in (select touched.order_id from touched)
        union all
        -- the other touched orders' lines did not change since S: as this table holds them
        select {{ line_columns }}
        from written
        where
            order_id in (select touched.order_id from touched)
            and order_id not in (select rewritten.order_id from rewritten)
        union all
        select {{ line_columns }}
        from {{ ref('int_order_lines_resolved') }}
        where order_id in (select lines_never_held.order_id from lines_never_held)
    ),

    orders as (
        select * from attributed
        where order_id in (select touched.order_id from touched)
    ),

    kept as (
        select * from written
        where order_id in (select touched.order_id from touched)
    )
{% else %}
    with lines as (
        select * from {{ ref('int_order_lines_resolved') }}
    ),

    orders as (
        select * from {{ ref('int_orders_attributed') }}
    )
{% endif %}

select
    lines.order_id,
    lines.line_id,
    orders.contact_id,
    lines.sku,
    lines.product_name,
    lines.category,
    lines.quantity,
    lines.unit_price,
    cast(lines.quantity * lines.unit_price as decimal(18, 4)) as line_amount,
    orders.ordered_at,
    orders.ordered_on,
    orders.status,
    {% if windowed %}
        {{ changed_on_and_contact_before('kept', 'kept.order_id is null', [
            ('orders.contact_id', 'contact_id'), ('orders.status', 'status'),
            ('orders.ordered_on', 'ordered_on'), ('lines.sku', 'sku'),
            ('lines.category', 'category'), ('lines.quantity', 'quantity'),
            ('lines.unit_price', 'unit_price'),
        ]) }}
    {% else %}
        {{ as_of_date() }} as changed_on,
        cast(null as {{ dbt.type_string() }}) as contact_id_before
    {% endif %}
from lines
inner join orders on lines.order_id = orders.order_id
{% if windowed %}
    left join kept on lines.order_id = kept.order_id and lines.line_id = kept.line_id
{% else %}
    -- in date order: a reader of some days (the recommendations' recent purchases, the
    -- contacts whose lines changed) then skips the blocks of other days by their dates
    -- instead of reading 25 million lines. Later nights append their lines at the end,
    -- recent days mostly, so the history's blocks keep their order.
    order by orders.ordered_on
{% endif %}
