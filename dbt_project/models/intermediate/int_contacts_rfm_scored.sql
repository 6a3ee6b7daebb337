-- RFM scores 1-5 (5 best) by quintile over contacts in the customer view with a completed
-- order in the window (orders of unknown or erased contacts do not move anyone's score).
-- Ties share a score (rank, not row_number), so a re-run always gives the same scores.
with buyers as (
    select
        purchases.contact_id,
        {{ days_before_as_of('purchases.last_purchase_date') }} as recency_days,
        purchases.order_count_730d as frequency,
        purchases.spend_730d as monetary
    from {{ ref('int_contacts_purchases_summarized') }} as purchases
    inner join {{ ref('int_contacts_resolved') }} as contacts
        on purchases.contact_id = contacts.contact_id
    where purchases.order_count_730d > 0 and not contacts.is_erased
),

ranked as (
    select
        *,
        rank() over (order by recency_days desc) as r_rank,
        rank() over (order by frequency asc) as f_rank,
        rank() over (order by monetary asc) as m_rank,
        count(*) over () as buyer_count
    from buyers
),

scored as (
    select
        contact_id,
        cast(1 + floor(5 * (r_rank - 1) / buyer_count) as integer) as r_score,
        cast(1 + floor(5 * (f_rank - 1) / buyer_count) as integer) as f_score,
        cast(1 + floor(5 * (m_rank - 1) / buyer_count) as integer) as m_score
    from ranked
)

select
    contact_id,
    r_score,
    f_score,
    m_score,
    case
        when r_score >= 4 and fm_score >= 4 then 'Champions'
        when r_score <= 2 and fm_score = 5 then 'Cannot Lose Them'
        when r_score <= 2 and fm_score >= 3 then 'At Risk'
        when r_score = 3 and fm_score >= 4 then 'Loyal Customers'
        when r_score >= 4 and fm_score >= 2 then 'Potential Loyalists'
        when r_score = 5 then 'New Customers'
        when r_score = 4 then 'Promising'
        when r_score = 3 and fm_score = 3 then 'Need Attention'
        when r_score = 3 then 'About to Sleep'
        when r_score = 2 then 'Hibernating'
        else 'Lost'
    end as rfm_segment
from (
    select
        *,
        cast(round((f_score + m_score) / 2.0) as integer) as fm_score
    from scored
) as scored_with_fm
