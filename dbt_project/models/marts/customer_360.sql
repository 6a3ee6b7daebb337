-- The single customer view: one row per non-erased contact known as of D.
{{ config(pre_hook="{{ join_as_written() }}", post_hook="{{ join_as_planned() }}") }}
with contacts as (
    select *
    from {{ ref('int_contacts_resolved') }}
    where not is_erased
),

erased_but_suppressed as (
    -- an erased address that had bounced or unsubscribed, kept only as its hash: its owner
    -- registering again must not undo the suppression
    select email_sha256 from {{ source('nightjar', 'erasures') }}
    where was_suppressed
),

suppressed as (
    select email from {{ ref('suppression_list') }}
    where scope = 'all'
    union
    select contacts.email from contacts
    where
        {{ sha256_hex('contacts.email') }}
        in (select erased_but_suppressed.email_sha256 from erased_but_suppressed)
),

known_timezones as (
    -- a zone DuckDB cannot convert to would stop the send times: the default instead
    {{ known_timezones() }}
),

purchases as (
    select * from {{ ref('int_contacts_purchases_summarized') }}
),

rfm as (
    select * from {{ ref('int_contacts_rfm_scored') }}
),

web as (
    select * from {{ ref('int_contacts_web_activity_summarized') }}
),

top_categories as (
    select
        contact_id,
        category
    from {{ ref('contact_category_affinity') }}
    where category_rank = 1
),

recommendations as (
    select
        contact_id,
        {{ ordered_list('sku', ['recommendation_rank']) }} as skus
    from {{ ref('product_recommendations') }}
    group by contact_id
),

engagement as (
    select * from {{ ref('int_contacts_engagement_summarized') }}
),

predicted as (
    select * from {{ ref('int_contacts_clv_predicted') }}
),

profile as (
    select
        contacts.*,
        contacts.birth_date is not null
        and contacts.birth_date not between date '1900-01-01' and {{ as_of_date() }}
            as is_birth_date_out_of_range,
        suppressed.email is not null as is_suppressed,
        case
            when not contacts.is_email_valid then 'invalid_email'
            when not contacts.email_opt_in then 'opted_out'
            when suppressed.email is not null then 'suppressed'
        end as unmailable_reason,
        known_timezones.name as known_timezone
    from contacts
    left join suppressed on contacts.email = suppressed.email
    left join known_timezones on contacts.timezone = known_timezones.name
)

select
    profile.contact_id,
    profile.email,
    profile.is_email_valid,
    profile.first_name,
    profile.last_name,
    profile.country,
    coalesce(profile.known_timezone, '{{ var("default_timezone") }}') as timezone,
    profile.email_opt_in,
    profile.is_suppressed,
    profile.unmailable_reason is null as is_mailable,
    profile.unmailable_reason,
    case when not profile.is_birth_date_out_of_range then profile.birth_date end as birth_date,
    profile.is_birth_date_out_of_range,
    profile.created_at,
    profile.updated_at,
    {{ purchase_figures('purchases') }},
    rfm.r_score,
    rfm.f_score,
    rfm.m_score,
    case
        when rfm.rfm_segment is not null then rfm.rfm_segment
        when purchases.contact_id is not null then 'No Recent Purchase'
        else 'Never Purchased'
    end as rfm_segment,
    web.last_seen_at,
    coalesce(web.page_views_30d, 0) as page_views_30d,
    coalesce(web.cart_adds_7d_without_purchase, 0) as cart_adds_7d_without_purchase,
    top_categories.category as top_category,
    recommendations.skus as recommended_skus,
    coalesce(engagement.emails_delivered, 0) as emails_delivered,
    coalesce(engagement.email_opens, 0) as email_opens,
    coalesce(engagement.email_clicks, 0) as email_clicks,
    engagement.last_opened_at,
    engagement.last_clicked_at,
    predicted.p_alive,
    predicted.expected_purchases_90d,
    predicted.expected_purchase_value,
    predicted.predicted_clv_12m,
    predicted.predicted_clv_decile,
    predicted.next_purchase_from,
    predicted.next_purchase_to,
    {{ as_of_date() }} as as_of_date
from profile
left join purchases on profile.contact_id = purchases.contact_id
left join rfm on profile.contact_id = rfm.contact_id
left join web on profile.contact_id = web.contact_id
left join top_categories on profile.contact_id = top_categories.contact_id
left join recommendations on profile.contact_id = recommendations.contact_id
left join engagement on profile.contact_id = engagement.contact_id
left join predicted on profile.contact_id = predicted.contact_id
