{#- One row per combination of `columns`, for a key of millions of rows: first by a hash of
    the columns (one integer a row, where a concatenation builds a string a row), then exactly,
    among the few rows whose hash repeats: a collision of the hash alone never fails it.

    Given `written_on`, the column holding the business date of the build that wrote a row,
    and `recent_by`, a column a row shares with its older copies (an incremental model's): on
    an incremental night (var incremental_since set) only the rows sharing a `recent_by`
    value with a row written since the last build are checked, against every row of the
    table: tonight's keys, and any older copy of them a faulty delete left. A full build
    checks every row. -#}
{% test unique_together(model, columns, recent_by=none, written_on=none) %}
    {%- if written_on and not recent_by %}
        {{ exceptions.raise_compiler_error("unique_together: written_on needs recent_by, the column shared by a row and its older copies") }}
    {%- endif %}
    {%- set key = columns | join(', ') %}
    {%- set windowed = written_on and var('incremental_since', none) is not none %}
    with checked as (
        select * from {{ model }}
        {%- if windowed %}
            where {{ recent_by }} in (
                select recent.{{ recent_by }} from {{ model }} as recent
                where recent.{{ written_on }} > {{ incremental_since_date() }}
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
