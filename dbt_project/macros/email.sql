{#- CONTRACT §2: normalized = trimmed and lower-cased; valid = a plausible address. -#}
{% macro normalize_email(column) -%}
    nullif(lower(trim({{ column }})), '')
{%- endmacro %}

{% macro is_valid_email(normalized_column) -%}
    coalesce(regexp_full_match({{ normalized_column }}, '[^@\s]+@[^@\s]+\.[^@\s]+'), false)
{%- endmacro %}
