{#- Incremental models read only what became visible as of D since S, the business date the
    build schema was last built for (var incremental_since, passed by Nightjar): rows landed
    after S, and rows landed by S but stamped after S ended, which S could not see yet.
    Nightjar passes no S, and a full refresh, when it cannot vouch for the tables: the first
    build, a date built before (a re-run or a past date), models changed since. Without S a
    model reads everything again: correct, only slower.

    A model decides for itself, where unit tests can override is_incremental(), and filters
    with the condition (just `true` when not windowed):
        {% set windowed = is_incremental() and var('incremental_since', none) is not none %}
        where ... and {{ incremental_window(windowed, 'business_date', 'updated_at') }}
-#}
{% macro incremental_window(windowed, business_date_column, timestamp_column) -%}
    {%- if windowed -%}
        {%- set since = incremental_since_date() -%}
        ({{ business_date_column }} > {{ since }}
        or {{ timestamp_column }} >= {{ utc_midnight(add_days(since, 1)) }})
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}

{#- Post-hook of every incremental model: the date its table now holds, so that Nightjar can
    tell whether a night may read only what is new (assets/warehouse/publish.py). A build by hand
    for another date is noticed, and the next night rebuilds whole. -#}
{% macro record_incremental_build() -%}
    {{ return(adapter.dispatch('record_incremental_build', 'nightjar')()) }}
{%- endmacro %}

{% macro default__record_incremental_build() -%}
    create table if not exists {{ this.schema }}.incremental_builds (
        model varchar primary key, as_of_date date not null
    );
    insert or replace into {{ this.schema }}.incremental_builds
    values ('{{ this.identifier }}', {{ as_of_date() }})
{%- endmacro %}

{% macro postgres__record_incremental_build() -%}
    create table if not exists {{ this.schema }}.incremental_builds (
        model varchar primary key, as_of_date date not null
    );
    insert into {{ this.schema }}.incremental_builds
    values ('{{ this.identifier }}', {{ as_of_date() }})
    on conflict (model) do update set as_of_date = excluded.as_of_date
{%- endmacro %}

{#- Spark builds them whole every night (incremental_materialization): nothing to vouch for. -#}
{% macro spark__record_incremental_build() -%}{%- endmacro %}

{#- The materialization of the models kept per key and rebuilt for the keys a night touched:
    incremental by delete+insert (dbt_project.yml) where the engine deletes rows (DuckDB,
    PostgreSQL; Delta or Iceberg tables on Spark would take `merge`); on Spark's plain parquet
    tables, which delete nothing, a whole table each night, which can never hold a key twice. -#}
{% macro incremental_materialization() -%}
    {{ return(adapter.dispatch('incremental_materialization', 'nightjar')()) }}
{%- endmacro %}

{% macro default__incremental_materialization() -%}incremental{%- endmacro %}

{% macro spark__incremental_materialization() -%}table{%- endmacro %}

{#- The orders an incremental night touched: an order version or a line version of it that
    became visible since S (a new order, a refund or cancellation, corrected lines). One
    order_id a row, possibly twice; read by the models kept per order or per day of orders.
    Line versions are taken by the folder they landed in only: one landed by S but stamped
    after S carries the updated_at of its order's version in the same folder, which the
    orders' part already takes (and a condition on that joined column read the whole join
    of 25 million lines with their orders, a second or more each time). -#}
{% macro orders_touched_since_last_build() -%}
    select order_id
    from {{ ref('stg_shop__orders') }}
    where
        business_date <= {{ as_of_date() }}
        and updated_at < {{ end_of_as_of_date() }}
        and {{ incremental_window(true, 'business_date', 'updated_at') }}
    union all
    select order_id
    from {{ ref('stg_shop__order_lines') }}
    where
        business_date <= {{ as_of_date() }}
        and business_date > {{ incremental_since_date() }}
{%- endmacro %}

{#- The rows an upsert by `key` chooses from: the versions landed since S (the CTE `landed`,
    with `columns`) and, in an incremental night, the kept row of each key they touch; the
    model then keeps the latest of each key. -#}
{% macro landed_and_kept_versions(windowed, key, columns) -%}
    select {{ columns | join(', ') }} from landed
    {% if windowed %}
        union all
        select {{ columns | join(', ') }} from {{ this }}
        where {{ key }} in (select landed.{{ key }} from landed)
    {% endif %}
{%- endmacro %}

{#- The contacts whose completed order lines (orders) in the `window_days` days ending D may
    differ from those ending S, in an incremental night: a line (order) a build changed since
    S (its contact now and as of S), one that left the window since S, and one dated after
    S. Read by the per-contact models of int_order_lines (of int_orders_attributed: the
    purchase summary), which recompute only these contacts. -#}
{% macro contacts_whose_lines_changed(window_days) -%}
    {{ contacts_whose_rows_changed(ref('int_order_lines'), window_days) }}
{%- endmacro %}

{% macro contacts_whose_orders_changed(window_days) -%}
    {{ contacts_whose_rows_changed(ref('int_orders_attributed'), window_days) }}
{%- endmacro %}

{#- Of a table that says, for each row, when a build last changed it (changed_on) and its
    contact before (contact_id_before). One range of one column a part: DuckDB filters each
    in the scan and skips the blocks of rows outside it by their dates (both tables are
    written in date order), where one condition over both columns read all 25 million lines
    at a million contacts. -#}
{% macro contacts_whose_rows_changed(relation, window_days) -%}
    {%- set since = incremental_since_date() -%}
    select contact_id
    from {{ relation }}
    where contact_id is not null and changed_on > {{ since }}
    union
    select contact_id_before
    from {{ relation }}
    where contact_id_before is not null and changed_on > {{ since }}
    union
    select contact_id
    from {{ relation }}
    where contact_id is not null and ordered_on > {{ since }}
    union
    select contact_id
    from {{ relation }}
    where
        contact_id is not null
        and ordered_on > cast({{ dbt.dateadd('day', -window_days, since) }} as date)
        and ordered_on <= cast({{ dbt.dateadd('day', -window_days, as_of_date()) }} as date)
{%- endmacro %}

{#- The bookkeeping columns of such a table, in an incremental night: changed_on, the date
    of the build that last changed any of `compared` (pairs of tonight's expression and the
    kept row's column; a rewrite that changes nothing keeps the date), and
    contact_id_before, the contact as of S, kept through every rewrite until a build passes.
    `kept` is the relation of the kept rows, `is_new` the condition of a row it lacks. -#}
{% macro changed_on_and_contact_before(kept, is_new, compared) -%}
    case
        when
            {{ is_new }}
            {%- for now, before in compared %}
            or {{ now }} is distinct from {{ kept }}.{{ before }}
            {%- endfor %}
            then {{ as_of_date() }}
        else {{ kept }}.changed_on
    end as changed_on,
    case
        when {{ kept }}.changed_on > {{ incremental_since_date() }} then {{ kept }}.contact_id_before
        else {{ kept }}.contact_id
    end as contact_id_before
{%- endmacro %}

{#- Pre-hook of an incremental model kept per contact or per order, rebuilt for those a night
    touched: in an incremental night their rows go first (a contact or order may be left with
    fewer rows, or none: an order whose lines were fixed leaves order_lines_mismatched); in a
    full build of an existing table, every row. `touched` is the macro that selects them,
    called with `arguments` only in an incremental night (it needs S). -#}
{% macro delete_rows_to_recompute(column, touched, arguments=[], windowed=none) -%}
    {%- if windowed is none -%}
        {%- set windowed = var('incremental_since', none) is not none -%}
    {%- endif -%}
    {%- if is_incremental() -%}
        delete from {{ this }}
        {%- if windowed %}
            where {{ column }} in ({{ touched(*arguments) }})
        {%- endif %}
    {%- endif -%}
{%- endmacro %}

{#- Whether a per-contact reader of int_order_lines or int_orders_attributed may recompute
    only the contacts whose rows changed since S, in an incremental night: its own rows must
    be as of S. A build after S that did not pass (a later model failed, or some models were
    built from the UI) may have left them as of a later date; a line or order passed to
    another contact by then, and on again since, was counted for a contact that neither its
    contact now nor its contact as of S names. Such a model is built whole instead, once. -#}
{% macro recomputes_changed_contacts() -%}
    {%- if not (is_incremental() and var('incremental_since', none) is not none) -%}
        {{ return(false) }}
    {%- endif -%}
    {%- if not execute -%}
        {{ return(true) }}
    {%- endif -%}
    {%- set held = run_query(
        "select as_of_date from " ~ this.schema ~ ".incremental_builds"
        ~ " where model = '" ~ this.identifier ~ "'"
    ) -%}
    {%- if held.rows | length == 0 -%}
        {{ return(false) }}
    {%- endif -%}
    {{ return((held.rows[0][0] | string) <= (var('incremental_since') | string)) }}
{%- endmacro %}

{#- Post-hook of an incremental model that keeps the rows a night did not touch: they are
    tonight's rows too, as of D. Spark builds the table whole (incremental_materialization),
    every row already as of D. -#}
{% macro restamp_kept_rows() -%}
    {{ return(adapter.dispatch('restamp_kept_rows', 'nightjar')()) }}
{%- endmacro %}

{% macro default__restamp_kept_rows() -%}
    update {{ this }} set as_of_date = {{ as_of_date() }} where as_of_date <> {{ as_of_date() }}
{%- endmacro %}

{% macro spark__restamp_kept_rows() -%}{%- endmacro %}
