-- clv_fits on an engine without dbt Python models: fitted by Nightjar in Python from this
-- build's int_contacts_clv_inputs (models/clv_engine.py), as clv_fits.py does on DuckDB.
select * from {{ source('nightjar_predictions', 'clv_fits') }}
