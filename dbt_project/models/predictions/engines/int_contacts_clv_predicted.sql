-- int_contacts_clv_predicted on an engine without dbt Python models: predicted by Nightjar in
-- Python (models/clv_engine.py), as int_contacts_clv_predicted.py does on DuckDB.
select * from {{ source('nightjar_predictions', 'int_contacts_clv_predicted') }}
