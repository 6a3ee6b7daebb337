{#- docs/contract.md §2, the one rule for addresses.
    Normalized = trimmed and lower-cased. Nightjar's Python matches dbt's addresses with the
    same lower(trim(...)) (erasure, suppressions, SendGrid events), so it stays exactly this. -#}
{% macro normalize_email(column) -%}
    nullif(lower(trim({{ column }})), '')
{%- endmacro %}

{#- Valid = the address as landed, trimmed, is a plain ASCII address, so that it is what it
    looks like: a zero-width or control character, a NUL, a Cyrillic "а" or a soft hyphen can
    never make a second address that reads as a suppressed one. A local part of RFC 5322
    dot-atom characters (no leading, trailing or double dot, at most 64), one "@", a domain of
    letter-digit-hyphen labels (no hyphen first or last, at most 63 each) with at least one dot
    and a top-level label of letters or xn-- punycode, at most 254 in all. An internationalized
    address needs its punycode domain and an ASCII local part.
    Judge the landed value, not the normalized one: lower() maps a few non-ASCII characters
    onto ASCII (the Kelvin sign K onto k), which would make a lookalike pass. Any value that
    passes is ASCII, so its normalized form is simply its lower case. Case-sensitive classes
    on purpose: a case-insensitive match folds the Kelvin sign into [a-z] too. -#}
{% macro is_valid_email(column) -%}
    {%- set address = 'trim(' ~ column ~ ')' -%}
    {%- set atext = "[A-Za-z0-9!#$%&''*+/=?^_`{|}~-]" -%}
    {%- set label = '[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?' -%}
    {%- set top_level = '([A-Za-z]{2,63}|[Xx][Nn]--([A-Za-z0-9-]{0,58}[A-Za-z0-9]))' -%}
    coalesce(
        {{ full_match(address, "'" ~ atext ~ '+(\.' ~ atext ~ '+)*@(' ~ label ~ '\.)+' ~ top_level ~ "'") }}
        and {{ dbt.length(address) }} <= 254
        and {{ dbt.length(dbt.split_part(address, "'@'", 1)) }} <= 64,
        false
    )
{%- endmacro %}

{#- Whether the whole text matches a regular expression: the one function of the address rule
    without a cross-database macro in dbt. DuckDB (RE2) by default; another adapter adds its
    own <adapter>__full_match (Snowflake: regexp_like; Postgres: text ~ '^(...)$'). -#}
{% macro full_match(text, pattern) -%}
    {{ return(adapter.dispatch('full_match', 'nightjar')(text, pattern)) }}
{%- endmacro %}

{% macro default__full_match(text, pattern) -%}
    regexp_full_match({{ text }}, {{ pattern }})
{%- endmacro %}

{% macro postgres__full_match(text, pattern) -%}
    ({{ text }} ~ ('^(' || {{ pattern }} || ')$'))
{%- endmacro %}

{#- Spark's string literals take backslash escapes: the pattern's own backslashes doubled,
    its quote escaped. -#}
{% macro spark__full_match(text, pattern) -%}
    {%- set body = pattern[1:-1].replace("''", "'").replace('\\', '\\\\').replace("'", "\\'") -%}
    regexp_like({{ text }}, '^({{ body }})$')
{%- endmacro %}
