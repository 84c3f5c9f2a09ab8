-- Usage metering (see the PostgreSQL migration): credits on keys, balances per actor, usage records.
ALTER TABLE api_keys ADD COLUMN credits_remaining BIGINT NULL;
ALTER TABLE api_keys ADD COLUMN credits_refill_amount BIGINT NULL;
ALTER TABLE api_keys ADD COLUMN credits_refill_interval SMALLINT NULL CHECK (credits_refill_interval IN (1, 2));
ALTER TABLE api_keys ADD COLUMN credits_refilled_at BIGINT NULL;

CREATE TABLE actor_balances (
    nid              TEXT NOT NULL,
    actor_id         TEXT NOT NULL,
    quota_micros     BIGINT NOT NULL CHECK (quota_micros >= 0),
    remaining_micros BIGINT NOT NULL,
    update_time      BIGINT NOT NULL,
    PRIMARY KEY (nid, actor_id)
);

CREATE TABLE usage_records (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    nid          TEXT NOT NULL,
    actor_id     TEXT NOT NULL,
    key_id       TEXT NOT NULL,
    usage_type   TEXT NOT NULL,
    usage_amount BIGINT NOT NULL,
    cost_micros  BIGINT NOT NULL,
    model        TEXT NOT NULL,
    request_id   TEXT NULL,
    session_id   TEXT NOT NULL,
    create_time  BIGINT NOT NULL
);
CREATE UNIQUE INDEX usage_records_nid_request_id_key ON usage_records (nid, request_id);
CREATE INDEX usage_records_nid_actor_id_id_idx ON usage_records (nid, actor_id, id);
