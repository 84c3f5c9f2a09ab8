DROP TABLE usage_records;
DROP TABLE actor_balances;
ALTER TABLE api_keys DROP COLUMN credits_refilled_at;
ALTER TABLE api_keys DROP COLUMN credits_refill_interval;
ALTER TABLE api_keys DROP COLUMN credits_refill_amount;
ALTER TABLE api_keys DROP COLUMN credits_remaining;
