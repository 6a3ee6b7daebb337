{#- An integer standing for a contact within one query, where millions of rows are joined,
    grouped or ranked by contact: a 64-bit hash of its id, computed where rows are read
    (a dense key would need a join of every row to a table of contacts). Not stable across
    engines or versions: never stored. DuckDB's hash() by default; another adapter adds its
    own <adapter>__contact_key (Spark: xxhash64). -#}
{% macro contact_key(column) -%}
    {{ return(adapter.dispatch('contact_key', 'nightjar')(column)) }}
{%- endmacro %}

{% macro default__contact_key(column) -%}
    hash({{ column }})
{%- endmacro %}
