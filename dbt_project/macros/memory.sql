{#- A pre-hook of customer_360, which left-joins a million contacts, some forty columns wide,
    to seven narrow per-contact tables: DuckDB builds each join's hash table from the
    per-contact table, as the query is written. DuckDB otherwise picks the side by its
    estimates, and it estimates a boolean filter (`not is_erased`) to keep a fifth of the
    rows: a night at a million contacts built the hash tables from the wide contacts
    instead, 800 MB of them, and failed ("failed to pin block", DuckDB's gigabyte full).
    As written, the model runs within 400 MB (docs/performance.md, "A night that failed at
    M"). The setting is DuckDB's global one: right while dbt runs one model at a time
    (profiles.yml, threads 1); it ends with dbt's process, also when the model fails before
    its post-hook. Another adapter may add its own <adapter>__join_as_written; by default
    the hooks are empty, and dbt skips them. -#}
{% macro join_as_written() -%}
    {{ return(adapter.dispatch('join_as_written', 'nightjar')()) }}
{%- endmacro %}

{% macro default__join_as_written() -%}{%- endmacro %}

{% macro duckdb__join_as_written() -%}
    set disabled_optimizers = 'build_side_probe_side'
{%- endmacro %}

{#- Its post-hook: the next models are planned as DuckDB chooses (no profile disables an
    optimizer of its own). -#}
{% macro join_as_planned() -%}
    {{ return(adapter.dispatch('join_as_planned', 'nightjar')()) }}
{%- endmacro %}

{% macro default__join_as_planned() -%}{%- endmacro %}

{% macro duckdb__join_as_planned() -%}
    reset disabled_optimizers
{%- endmacro %}
