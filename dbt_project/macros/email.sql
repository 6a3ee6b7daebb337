{#- CONTRACT §2: normalized = trimmed and lower-cased; valid = a plausible address. -#}
{% macro normalize_email(column) -%}
    nullif(lower(trim({{ column }})), '')
{%- endmacro %}

{#- \s of the contract's regex means any Unicode white space (as in Python); RE2's \s is
    ASCII only, so the class spells it out. -#}
{% macro is_valid_email(normalized_column) -%}
    {%- set char = "[^@[:space:]\\p{Z}\\x{1c}-\\x{1f}\\x{85}]" -%}
    coalesce(regexp_full_match({{ normalized_column }}, '{{ char }}+@{{ char }}+\.{{ char }}+'), false)
{%- endmacro %}
