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
        {%- set since = "cast('" ~ var('incremental_since') ~ "' as date)" -%}
        ({{ business_date_column }} > {{ since }}
        or {{ timestamp_column }} >= timezone('UTC', cast({{ since }} as timestamp) + interval 1 day))
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}

{#- Post-hook of every incremental model: the date its table now holds, so that Nightjar can
    tell whether a night may read only what is new (assets/warehouse/publish.py). A build by hand
    for another date is noticed, and the next night rebuilds whole. -#}
{% macro record_incremental_build() -%}
    create table if not exists {{ this.schema }}.incremental_builds (
        model varchar primary key, as_of_date date not null
    );
    insert or replace into {{ this.schema }}.incremental_builds
    values ('{{ this.identifier }}', {{ as_of_date() }})
{%- endmacro %}

{#- The orders an incremental night touched: an order version or a line version of it that
    became visible since S (a new order, a refund or cancellation, corrected lines). One
    order_id a row, possibly twice; read by the models kept per order or per day of orders. -#}
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
        and {{ incremental_window(true, 'business_date', 'order_updated_at') }}
{%- endmacro %}

{#- The rows an upsert by `key` chooses from: the versions landed since S (the CTE `landed`)
    and, in an incremental night, the kept row of each key they touch; the model then keeps
    the latest of each key. -#}
{% macro landed_and_kept_versions(windowed, key) -%}
    select * from landed
    {% if windowed %}
        union all by name
        select * from {{ this }}
        where {{ key }} in (select landed.{{ key }} from landed)
    {% endif %}
{%- endmacro %}
