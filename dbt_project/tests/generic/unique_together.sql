{#- One row per combination of `columns`, for a key of millions of rows: first by a hash of
    the columns (one integer a row, where a concatenation builds a string a row), then exactly,
    among the few rows whose hash repeats: a collision of the hash alone never fails it.

    With `recent_rows` (a condition; empty for every row) and `recent_by` (a column), only
    the rows sharing a `recent_by` value with a row matching the condition are checked,
    against every row of the table: an incremental model's keys written tonight, and any
    older copy of them a faulty delete left. -#}
{% test unique_together(model, columns, recent_by=none, recent_rows=none) %}
    {%- if recent_rows and not recent_by %}
        {{ exceptions.raise_compiler_error("unique_together: recent_rows needs recent_by, the column shared by a row and its older copies") }}
    {%- endif %}
    {%- set key = columns | join(', ') %}
    with checked as (
        select * from {{ model }}
        {%- if recent_rows %}
            where {{ recent_by }} in (
                select recent.{{ recent_by }} from {{ model }} as recent
                where {{ recent_rows }}
            )
        {%- endif %}
    ),

    repeated_hashes as (
        select {{ key_hash(columns) }} as key_hash
        from checked
        group by {{ key_hash(columns) }}
        having count(*) > 1
    )

    select
        {{ key }},
        count(*) as row_count
    from checked
    where {{ key_hash(columns) }} in (select repeated_hashes.key_hash from repeated_hashes)
    group by {{ key }}
    having count(*) > 1
{% endtest %}
