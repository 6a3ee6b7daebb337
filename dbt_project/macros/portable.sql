{#- What one engine spells differently from another, each behind a macro that dispatches by
    adapter (README, "Keeping the SQL portable"): the default is DuckDB's spelling, and
    PostgreSQL and Spark add theirs where it differs (make test-spark builds the project on
    both and compares every table with DuckDB's). Where dbt has a cross-database macro
    (dateadd, date_trunc, last_day, type_string, ...), models call that instead;
    days_between keeps DuckDB's short date_diff where dbt's datediff is spelled long, and dbt
    has no date_part (calendar_part).
    Spark's session time zone is UTC (profiles.yml), as DuckDB's is: a Spark timestamp is
    then an instant read in UTC. -#}

{#- A moment in time, with its zone: what a SendGrid event or an order's timestamp is. -#}
{% macro type_instant() -%}
    {{ return(adapter.dispatch('type_instant', 'nightjar')()) }}
{%- endmacro %}

{% macro default__type_instant() -%}timestamptz{%- endmacro %}

{% macro spark__type_instant() -%}timestamp{%- endmacro %}

{#- A double-precision number (dbt's type_float is a 4-byte float on DuckDB). -#}
{% macro type_double() -%}
    {{ return(adapter.dispatch('type_double', 'nightjar')()) }}
{%- endmacro %}

{% macro default__type_double() -%}double{%- endmacro %}

{% macro postgres__type_double() -%}double precision{%- endmacro %}

{#- The instant a date begins in UTC. -#}
{% macro utc_midnight(date_expression) -%}
    {{ return(adapter.dispatch('utc_midnight', 'nightjar')(date_expression)) }}
{%- endmacro %}

{% macro default__utc_midnight(date_expression) -%}
    timezone('UTC', cast(cast({{ date_expression }} as date) as timestamp))
{%- endmacro %}

{% macro spark__utc_midnight(date_expression) -%}
    cast(cast({{ date_expression }} as date) as timestamp)
{%- endmacro %}

{#- An instant's wall-clock time in a time zone (a timestamp without zone). -#}
{% macro local_time(zone, instant) -%}
    {{ return(adapter.dispatch('local_time', 'nightjar')(zone, instant)) }}
{%- endmacro %}

{% macro default__local_time(zone, instant) -%}
    timezone({{ zone }}, {{ instant }})
{%- endmacro %}

{% macro spark__local_time(zone, instant) -%}
    from_utc_timestamp({{ instant }}, {{ zone }})
{%- endmacro %}

{#- The instant a wall-clock time in a time zone is. -#}
{% macro instant_at(zone, local) -%}
    {{ return(adapter.dispatch('instant_at', 'nightjar')(zone, local)) }}
{%- endmacro %}

{% macro default__instant_at(zone, local) -%}
    timezone({{ zone }}, {{ local }})
{%- endmacro %}

{% macro spark__instant_at(zone, local) -%}
    to_utc_timestamp({{ local }}, {{ zone }})
{%- endmacro %}

{#- A date `days` days after a date (before, when negative), as a date. -#}
{% macro add_days(date_expression, days) -%}
    cast({{ dbt.dateadd('day', days, date_expression) }} as date)
{%- endmacro %}

{#- A date's year, month, day or hour as an integer (SQL's extract, which each engine has). -#}
{% macro calendar_part(part, expression) -%}
    cast(extract({{ part }} from {{ expression }}) as {{ dbt.type_int() }})
{%- endmacro %}

{#- The value of the row with the least (first_by) or greatest (last_by) ordering keys, rows
    with a null value or a null single key left out, as DuckDB's arg_min and arg_max do; with
    keep_nulls, the value of that row even when null (DuckDB's arg_max_null). `where`
    restricts the rows as an aggregate's filter clause. -#}
{% macro first_by(value, keys, where=none, keep_nulls=false) -%}
    {{ return(adapter.dispatch('value_by', 'nightjar')(value, keys, where, 'min', keep_nulls)) }}
{%- endmacro %}

{% macro last_by(value, keys, where=none, keep_nulls=false) -%}
    {{ return(adapter.dispatch('value_by', 'nightjar')(value, keys, where, 'max', keep_nulls)) }}
{%- endmacro %}

{% macro _value_by_rows(value, keys, where, keep_nulls) -%}
    {%- set conditions = ['true' if keep_nulls else value ~ ' is not null'] -%}
    {%- if keys | length == 1 %}{% do conditions.append(keys[0] ~ ' is not null') %}{% endif -%}
    {%- if where %}{% do conditions.append('(' ~ where ~ ')') %}{% endif -%}
    {{ conditions | join(' and ') }}
{%- endmacro %}

{% macro default__value_by(value, keys, where, direction, keep_nulls) -%}
    {%- set key = keys[0] if keys | length == 1 else 'struct_pack(' ~ keys | join(', ') ~ ')' -%}
    arg_{{ direction }}{{ '_null' if keep_nulls }}({{ value }}, {{ key }})
    {%- if where %} filter (where {{ where }}){% endif %}
{%- endmacro %}

{% macro postgres__value_by(value, keys, where, direction, keep_nulls) -%}
    {%- set order = ' desc' if direction == 'max' else '' -%}
    (array_agg({{ value }} order by {% for key in keys %}{{ key }}{{ order }}{{ ', ' if not loop.last }}{% endfor %})
    filter (where {{ _value_by_rows(value, keys, where, keep_nulls) }}))[1]
{%- endmacro %}

{% macro spark__value_by(value, keys, where, direction, keep_nulls) -%}
    {%- set key = keys[0] if keys | length == 1 else 'struct(' ~ keys | join(', ') ~ ')' -%}
    {{ direction }}_by({{ value }}, {{ key }})
    filter (where {{ _value_by_rows(value, keys, where, keep_nulls) }})
{%- endmacro %}

{#- An aggregate's values as a list, in the order of `keys` (ascending). -#}
{% macro ordered_list(value, keys) -%}
    {{ return(adapter.dispatch('ordered_list', 'nightjar')(value, keys)) }}
{%- endmacro %}

{% macro default__ordered_list(value, keys) -%}
    list({{ value }} order by {{ keys | join(', ') }})
{%- endmacro %}

{#- JSON on PostgreSQL, as its records: an array column's type reads as ARRAY, which a unit
    test's fixture cannot cast to. -#}
{% macro postgres__ordered_list(value, keys) -%}
    jsonb_agg({{ value }} order by {{ keys | join(', ') }})
{%- endmacro %}

{% macro spark__ordered_list(value, keys) -%}
    transform(
        array_sort(collect_list(struct({% for key in keys %}{{ key }} as k{{ loop.index }}, {% endfor %}{{ value }} as v))),
        item -> item.v
    )
{%- endmacro %}

{#- A list of records (sku, value) in a column: a list of structs, JSON on PostgreSQL. -#}
{% macro ordered_records(fields, keys) -%}
    {{ return(adapter.dispatch('ordered_records', 'nightjar')(fields, keys)) }}
{%- endmacro %}

{% macro default__ordered_records(fields, keys) -%}
    {%- set record -%}
        struct_pack({% for name, value in fields.items() %}{{ name }} := {{ value }}{{ ', ' if not loop.last }}{% endfor %})
    {%- endset -%}
    {{ default__ordered_list(record, keys) }}
{%- endmacro %}

{% macro postgres__ordered_records(fields, keys) -%}
    jsonb_agg(jsonb_build_object({% for name, value in fields.items() %}'{{ name }}', {{ value }}{{ ', ' if not loop.last }}{% endfor %}) order by {{ keys | join(', ') }})
{%- endmacro %}

{% macro spark__ordered_records(fields, keys) -%}
    {%- set record -%}
        named_struct({% for name, value in fields.items() %}'{{ name }}', {{ value }}{{ ', ' if not loop.last }}{% endfor %})
    {%- endset -%}
    {{ spark__ordered_list(record, keys) }}
{%- endmacro %}

{#- The hex SHA-256 of a text's UTF-8 bytes. -#}
{% macro sha256_hex(text) -%}
    {{ return(adapter.dispatch('sha256_hex', 'nightjar')(text)) }}
{%- endmacro %}

{% macro default__sha256_hex(text) -%}sha256({{ text }}){%- endmacro %}

{% macro postgres__sha256_hex(text) -%}
    encode(sha256(convert_to({{ text }}, 'UTF8')), 'hex')
{%- endmacro %}

{% macro spark__sha256_hex(text) -%}sha2({{ text }}, 256){%- endmacro %}

{#- The time zone names the engine converts with (a query of one column, name). -#}
{% macro known_timezones() -%}
    {{ return(adapter.dispatch('known_timezones', 'nightjar')()) }}
{%- endmacro %}

{% macro default__known_timezones() -%}select name from pg_timezone_names(){%- endmacro %}

{% macro postgres__known_timezones() -%}select name from pg_timezone_names{%- endmacro %}

{#- Spark lists none: the IANA names dbt knows (pytz), which Java's time zones include. -#}
{% macro spark__known_timezones() -%}
    select explode(array('{{ modules.pytz.all_timezones | reject("in", ["Factory"]) | join("', '") }}')) as name
{%- endmacro %}

{#- A common table expression the engine computes once, where it would otherwise inline it
    into each of its readers (`ranked {{ materialized() }} (...)`). -#}
{% macro materialized() -%}
    {{ return(adapter.dispatch('materialized', 'nightjar')()) }}
{%- endmacro %}

{% macro default__materialized() -%}as materialized{%- endmacro %}

{% macro spark__materialized() -%}as{%- endmacro %}

{#- The first row of each partition in an order, with `columns` (a list) only: what DuckDB
    writes `qualify row_number() over (...) = 1`, which PostgreSQL and Spark lack. -#}
{% macro first_row_per(relation, partition_by, order_by, columns) -%}
    select {{ columns | join(', ') }}
    from (
        select
            {{ relation }}.*,
            row_number() over (partition by {{ partition_by }} order by {{ order_by }}) as row_rank
        from {{ relation }}
    ) as ranked
    where row_rank = 1
{%- endmacro %}

{#- A date's month and day as text, 'MM-DD'. -#}
{% macro month_day(date_expression) -%}
    {{ return(adapter.dispatch('month_day', 'nightjar')(date_expression)) }}
{%- endmacro %}

{% macro default__month_day(date_expression) -%}strftime({{ date_expression }}, '%m-%d'){%- endmacro %}

{% macro postgres__month_day(date_expression) -%}to_char({{ date_expression }}, 'MM-DD'){%- endmacro %}

{% macro spark__month_day(date_expression) -%}date_format({{ date_expression }}, 'MM-dd'){%- endmacro %}

{#- Whole days from one date to another (dbt's datediff, spelled short). -#}
{% macro days_between(start_date, end_date) -%}
    {{ return(adapter.dispatch('days_between', 'nightjar')(start_date, end_date)) }}
{%- endmacro %}

{% macro default__days_between(start_date, end_date) -%}
    date_diff('day', {{ start_date }}, {{ end_date }})
{%- endmacro %}

{% macro postgres__days_between(start_date, end_date) -%}
    (cast({{ end_date }} as date) - cast({{ start_date }} as date))
{%- endmacro %}

{% macro spark__days_between(start_date, end_date) -%}
    datediff({{ end_date }}, {{ start_date }})
{%- endmacro %}
