{#- One row per combination of `columns`, for a key of millions of rows: first by a hash of
    the columns (one integer a row, where a concatenation builds a string a row), then exactly,
    among the few rows whose hash repeats: a collision of the hash alone never fails it. -#}
{% test unique_together(model, columns) %}
    {%- set key = columns | join(', ') %}
    with repeated_hashes as (
        select hash({{ key }}) as key_hash
        from {{ model }}
        group by hash({{ key }})
        having count(*) > 1
    )

    select
        {{ key }},
        count(*) as row_count
    from {{ model }}
    where hash({{ key }}) in (select repeated_hashes.key_hash from repeated_hashes)
    group by {{ key }}
    having count(*) > 1
{% endtest %}
