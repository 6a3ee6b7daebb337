{#- An integer standing for a contact within one query, where millions of rows are joined,
    grouped or ranked by contact: a 64-bit hash of its id, computed where rows are read
    (a dense key would need a join of every row to a table of contacts). Not stable across
    engines or versions: never stored. key_hash, dispatched by adapter: DuckDB's hash(),
    PostgreSQL's hashtextextended, Spark's xxhash64. -#}
{% macro contact_key(column) -%}
    {{ key_hash([column]) }}
{%- endmacro %}

{#- A 64-bit hash of one or more columns, never stored (as contact_key). -#}
{% macro key_hash(columns) -%}
    {{ return(adapter.dispatch('key_hash', 'nightjar')(columns)) }}
{%- endmacro %}

{% macro default__key_hash(columns) -%}
    hash({{ columns | join(', ') }})
{%- endmacro %}

{% macro postgres__key_hash(columns) -%}
    hashtextextended({{ joined_text(columns) }}, 0)
{%- endmacro %}

{% macro spark__key_hash(columns) -%}
    xxhash64({{ columns | join(', ') }})
{%- endmacro %}
