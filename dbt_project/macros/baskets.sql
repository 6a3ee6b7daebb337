{#- Each pair of distinct SKUs on one order, as (earlier, later), from `basket_lines`
    (ordered_on, order_id, sku, each SKU once an order); columns ordered_on, sku, related_sku.
    DuckDB: each order's SKUs as a sorted list, its pairs unnested: a full build would
    otherwise hold every line of a year twice in a join. Elsewhere: the lines joined to
    themselves, which a distributed engine spreads over its workers. -#}
{% macro sku_pairs(basket_lines) -%}
    {{ return(adapter.dispatch('sku_pairs', 'nightjar')(basket_lines)) }}
{%- endmacro %}

{% macro duckdb__sku_pairs(basket_lines) -%}
    select
        ordered_on,
        skus[sku_position] as sku,
        unnest(skus[sku_position + 1:]) as related_sku
    from (
        select
            ordered_on,
            skus,
            unnest(range(1, len(skus))) as sku_position
        from (
            select
                ordered_on,
                list(sku order by sku) as skus
            from {{ basket_lines }}
            group by ordered_on, order_id
        ) as baskets
        where len(skus) > 1
    ) as positions
{%- endmacro %}

{% macro default__sku_pairs(basket_lines) -%}
    select
        earlier.ordered_on,
        earlier.sku,
        later.sku as related_sku
    from {{ basket_lines }} as earlier
    inner join {{ basket_lines }} as later
        on
            earlier.ordered_on = later.ordered_on
            and earlier.order_id = later.order_id
            and earlier.sku < later.sku
{%- endmacro %}
