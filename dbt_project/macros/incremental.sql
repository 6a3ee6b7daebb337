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
