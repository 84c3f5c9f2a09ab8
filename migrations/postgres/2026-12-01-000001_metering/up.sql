-- Usage metering (docs/metering.md): credits on keys, balances per actor, usage records.

-- Key credits (Unkey-style). NULL `credits_remaining` = the key has no credits (unlimited). Each
-- verification spends with one conditional UPDATE (`… WHERE credits_remaining >= cost`), so the
-- database is the one place the balance lives. A refill resets `credits_remaining` to
-- `credits_refill_amount` at each UTC day (interval 1) or month (interval 2) boundary; the
-- boundary last applied is `credits_refilled_at` (unix microseconds), so each boundary refills once.
ALTER TABLE api_keys ADD COLUMN credits_remaining BIGINT NULL;
ALTER TABLE api_keys ADD COLUMN credits_refill_amount BIGINT NULL;
ALTER TABLE api_keys ADD COLUMN credits_refill_interval SMALLINT NULL CHECK (credits_refill_interval IN (1, 2));
ALTER TABLE api_keys ADD COLUMN credits_refilled_at BIGINT NULL;

-- An actor's metered balance. `quota_micros` > 0 turns enforcement on (verify refuses while
-- `remaining_micros` <= 0); 0 = unlimited. Debited by usage ingestion.
CREATE TABLE actor_balances (
    nid              TEXT COLLATE "C" NOT NULL,
    actor_id         TEXT COLLATE "C" NOT NULL,
    quota_micros     BIGINT NOT NULL CHECK (quota_micros >= 0),
    remaining_micros BIGINT NOT NULL,
    update_time      BIGINT NOT NULL,
    PRIMARY KEY (nid, actor_id)
);

-- One row per ingested usage event. A request id is taken once per network: the unique index is
-- what makes a retried ingestion a no-op (NULLs are distinct, so events without one never collide).
CREATE TABLE usage_records (
    id           BIGSERIAL PRIMARY KEY,
    nid          TEXT COLLATE "C" NOT NULL,
    actor_id     TEXT COLLATE "C" NOT NULL,
    key_id       TEXT NOT NULL,
    usage_type   TEXT NOT NULL,
    usage_amount BIGINT NOT NULL,
    cost_micros  BIGINT NOT NULL,
    model        TEXT NOT NULL,
    request_id   TEXT COLLATE "C" NULL,
    session_id   TEXT NOT NULL,
    create_time  BIGINT NOT NULL
);
CREATE UNIQUE INDEX usage_records_nid_request_id_key ON usage_records (nid, request_id);
-- An actor's history, newest first.
CREATE INDEX usage_records_nid_actor_id_id_idx ON usage_records (nid, actor_id, id);
