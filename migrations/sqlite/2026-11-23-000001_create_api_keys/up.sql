-- One table for issued and imported keys (column `kind`), portable column model shared with
-- PostgreSQL: times are unix microseconds, lists/objects are JSON text, enums are small integers.
-- SQLite compares TEXT bytewise (BINARY collation), matching the "C" collation used on PostgreSQL.
CREATE TABLE api_keys (
    nid                    TEXT NOT NULL,
    key_id                 TEXT NOT NULL,
    kind                   TEXT NOT NULL CHECK (kind IN ('issued', 'imported')),
    name                   TEXT NOT NULL,
    actor_id               TEXT NOT NULL,
    scopes                 TEXT NOT NULL,
    metadata               TEXT NOT NULL,
    -- 1 = active, 2 = revoked (KeyStatus numbering); EXPIRED is computed from expire_time.
    status                 SMALLINT NOT NULL CHECK (status IN (1, 2)),
    visibility             SMALLINT NOT NULL CHECK (visibility IN (0, 1, 2)),
    create_time            BIGINT NOT NULL,
    update_time            BIGINT NOT NULL,
    expire_time            BIGINT NULL,
    last_used_time         BIGINT NULL,
    rate_limit_quota       BIGINT NULL,
    rate_limit_window_secs BIGINT NULL,
    allowed_cidrs          TEXT NULL,
    revocation_reason      SMALLINT NULL,
    revocation_description TEXT NULL,
    request_id             TEXT NULL,
    hash                   BLOB NULL,
    hash_secret_id         TEXT NULL,
    PRIMARY KEY (nid, key_id)
);

-- NULLs are distinct in SQLite unique indexes, so issued keys (hash NULL) never collide.
CREATE UNIQUE INDEX api_keys_nid_hash_key ON api_keys (nid, hash);
CREATE UNIQUE INDEX api_keys_nid_kind_request_id_key ON api_keys (nid, kind, request_id);
CREATE INDEX api_keys_nid_kind_actor_id_key_id_idx ON api_keys (nid, kind, actor_id, key_id);
CREATE INDEX api_keys_nid_kind_key_id_idx ON api_keys (nid, kind, key_id);
-- count_active (quota checks): an index-only count of one network's stored-active rows.
CREATE INDEX api_keys_nid_status_expire_time_idx ON api_keys (nid, status, expire_time);
