{#- A number in [0, 1) fixed by its parts: md5 of the parts joined by '|', first 32 bits.
    Stable across runs, machines and DuckDB versions, and easy to reproduce elsewhere
    (Python: int(hashlib.md5('|'.join(parts).encode()).hexdigest()[:8], 16) / 2**32). -#}
{% macro stable_unit_hash(parts) -%}
    {{ return(adapter.dispatch('stable_unit_hash', 'nightjar')(parts)) }}
{%- endmacro %}

{#- The parts as text joined by "|", nulls left out (concat_ws casts no part on Spark). -#}
{% macro joined_text(parts) -%}
    concat_ws('|', {% for part in parts %}cast({{ part }} as {{ dbt.type_string() }}){{ ', ' if not loop.last }}{% endfor %})
{%- endmacro %}

{% macro default__stable_unit_hash(parts) -%}
    (cast('0x' || left(md5({{ joined_text(parts) }}), 8) as ubigint) / 4294967296.0)
{%- endmacro %}

{% macro postgres__stable_unit_hash(parts) -%}
    (cast(cast('x' || left(md5({{ joined_text(parts) }}), 8) as bit(32)) as bigint)
    / 4294967296.0)
{%- endmacro %}

{% macro spark__stable_unit_hash(parts) -%}
    (cast(conv(left(md5({{ joined_text(parts) }}), 8), 16, 10) as double) / 4294967296)
{%- endmacro %}

{#- The earliest moment messages of D may be scheduled for: when Nightjar computes the
    decisions (var send_after, an ISO timestamp), and never before D has ended. -#}
{% macro send_after() -%}
    {%- set value = var('send_after', none) -%}
    {%- if value -%}
        greatest(cast('{{ value }}' as {{ type_instant() }}), {{ end_of_as_of_date() }})
    {%- else -%}
        {{ end_of_as_of_date() }}
    {%- endif -%}
{%- endmacro %}

{#- True when a local hour (0-23) falls inside the quiet hours [start, end), which may wrap
    past midnight (21-8 means 21:00 to 07:59). -#}
{% macro in_quiet_hours(hour) -%}
    {%- set start = var('quiet_hours_start') | int -%}
    {%- set end = var('quiet_hours_end') | int -%}
    {%- if start > end -%}
        ({{ hour }} >= {{ start }} or {{ hour }} < {{ end }})
    {%- elif start < end -%}
        ({{ hour }} >= {{ start }} and {{ hour }} < {{ end }})
    {%- else -%}
        false
    {%- endif -%}
{%- endmacro %}

{#- The first moment of the quiet hours after a local moment outside them (null without
    quiet hours): a message due then must not leave once it has passed. -#}
{% macro next_quiet_hours_start(local_moment) -%}
    {%- set start = var('quiet_hours_start') | int -%}
    {%- if start == var('quiet_hours_end') | int -%}
        cast(null as timestamp)
    {%- else -%}
        {%- set that_day = dbt.dateadd('hour', start, dbt.date_trunc('day', local_moment)) -%}
        case
            when {{ that_day }} <= {{ local_moment }} then {{ dbt.dateadd('day', 1, that_day) }}
            else {{ that_day }}
        end
    {%- endif -%}
{%- endmacro %}

{#- When the decisions were made (var send_after, set by Nightjar when it builds them), so
    that a send can refuse decisions grown stale; null in a build by hand. -#}
{% macro decided_at() -%}
    {%- set value = var('send_after', none) -%}
    {%- if value -%}
        cast('{{ value }}' as {{ type_instant() }})
    {%- else -%}
        cast(null as {{ type_instant() }})
    {%- endif -%}
{%- endmacro %}

{#- True for a contact of the global control group: a stable draw of var global_control_share
    of all contacts (0: none), withheld from every campaign and journey, against which
    global_control_results measures the whole program. -#}
{% macro in_global_control(contact_id) -%}
    ({{ stable_unit_hash([contact_id, "'" ~ var('holdout_salt') ~ "'", "'global_control'"]) }}
    < {{ var('global_control_share') }})
{%- endmacro %}
