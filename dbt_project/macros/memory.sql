{#- Hooks of the widest tables (a million contacts by some forty columns): DuckDB writes the
    table in any order. Kept in order, each thread's finished rows wait in memory for the
    rows before them. The night at a million contacts failed in customer_360 ("failed to
    pin block", DuckDB's gigabyte full), where alone it runs in 300 MB: two of three nights
    beside two busy loops failed, two with these hooks passed. They are not the whole
    answer: make bench's night at M still failed so, once, after them (docs/performance.md,
    "A night that fails at M"). No reader depends on these tables' row order. -#}
{% macro write_in_any_order() -%}
    set preserve_insertion_order = false
{%- endmacro %}

{% macro write_in_order_again() -%}
    reset preserve_insertion_order
{%- endmacro %}
