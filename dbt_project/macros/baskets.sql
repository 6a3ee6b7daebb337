{#- Each pair of distinct SKUs on one order, as (earlier, later), from `basket_lines`
    (ordered_on, order_id, sku, each SKU once an order); columns ordered_on, sku, related_sku.
    DuckDB: each order's SKUs as a sorted list, its pairs unnested: a full build would
    otherwise hold every line of a year twice in a join (past DuckDB's gigabyte at M). The
    list is built as one string an order, split again: DuckDB's list aggregate over the 9.5 M
    orders of a full build at M took 12 s, its string_agg 4.6 s (the pairs alone 10 s against
    19 to 22 s, the whole model 15.5 s against 24.7 s, the same rows). The separator, the unit
    separator (U+001F), is a control character, which no SKU holds (the extracts' checks
    refuse it: models/extracts.py); the SKUs must not be null (string_agg skips a null).
    Elsewhere: the lines joined to themselves, which a distributed engine spreads over its
    workers. -#}
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
                list_sort(string_split(joined_skus, chr(31))) as skus
            from (
                select
                    ordered_on,
                    string_agg(sku, chr(31)) as joined_skus
                from {{ basket_lines }}
                group by ordered_on, order_id
            ) as joined
            -- orders of one SKU have no pair
            where contains(joined_skus, chr(31))
        ) as baskets
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
