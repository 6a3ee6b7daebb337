{#- The run's business date D. Every model works as of D, never from the wall clock. -#}
{% macro as_of_date() -%}
    {%- set value = var('as_of_date', none) -%}
    {%- if value is none and execute -%}
        {{ exceptions.raise_compiler_error(
            "No business date: pass --vars '{as_of_date: YYYY-MM-DD}' (nightjar run does)."
        ) }}
    {%- endif -%}
    cast('{{ value or "1970-01-01" }}' as date)
{%- endmacro %}

{#- S, the date the incremental models were last built for (var incremental_since). -#}
{% macro incremental_since_date() -%}
    cast('{{ var("incremental_since") }}' as date)
{%- endmacro %}

{#- The first instant after D, in UTC: data "as of D" has timestamps before it. -#}
{% macro end_of_as_of_date() -%}
    {{ utc_midnight(add_days(as_of_date(), 1)) }}
{%- endmacro %}

{#- A timestamp's UTC calendar date (docs/contract.md §2), whatever the session time zone. -#}
{% macro utc_date(column) -%}
    {{ return(adapter.dispatch('utc_date', 'nightjar')(column)) }}
{%- endmacro %}

{% macro default__utc_date(column) -%}
    cast(timezone('UTC', {{ column }}) as date)
{%- endmacro %}

{% macro spark__utc_date(column) -%}
    to_date({{ column }})
{%- endmacro %}

{#- Whole days from a date to D. -#}
{% macro days_before_as_of(column) -%}
    {{ days_between(column, as_of_date()) }}
{%- endmacro %}

{#- A contact's purchase figures from int_contacts_purchases_summarized (aliased `relation`),
    zero rather than missing for a contact without purchases. -#}
{% macro purchase_figures(relation) -%}
    coalesce({{ relation }}.total_spend, 0) as total_spend,
    coalesce({{ relation }}.spend_730d, 0) as spend_730d,
    coalesce({{ relation }}.order_count, 0) as order_count,
    coalesce({{ relation }}.order_count_730d, 0) as order_count_730d,
    {{ relation }}.last_purchase_date,
    {{ days_before_as_of(relation ~ '.last_purchase_date') }} as days_since_last_purchase
{%- endmacro %}
