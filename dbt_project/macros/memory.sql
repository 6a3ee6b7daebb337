{#- Hooks of the widest tables (a million contacts by some forty columns): DuckDB writes the
    table in any order. Kept in order, each thread's finished rows wait in memory for the
    rows before them; on a busy machine they piled up past DuckDB's gigabyte, and the night
    at a million contacts failed in customer_360 ("failed to pin block"), where alone it
    needs 300 MB. No reader depends on these tables' row order. -#}
{% macro write_in_any_order() -%}
    set preserve_insertion_order = false
{%- endmacro %}

{% macro write_in_order_again() -%}
    reset preserve_insertion_order
{%- endmacro %}
