-- One table for issued and imported keys (column `kind`), portable column model shared with SQLite:
-- times are unix microseconds (BIGINT), lists/objects are JSON text, enums are SMALLINT.
-- Text columns that are compared or ordered use COLLATE "C" so ordering is bytewise, exactly as on
-- SQLite (keyset pagination by key_id must agree across backends), and so btree comparisons are cheap.
CREATE TABLE api_keys (
    nid                    TEXT COLLATE "C" NOT NULL,
    key_id                 TEXT COLLATE "C" NOT NULL,
    kind                   TEXT COLLATE "C" NOT NULL CHECK (kind IN ('issued', 'imported')),
    name                   TEXT NOT NULL,
    actor_id               TEXT COLLATE "C" NOT NULL,
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
    request_id             TEXT COLLATE "C" NULL,
    hash                   BYTEA NULL,
    hash_secret_id         TEXT NULL,
    PRIMARY KEY (nid, key_id)
);

-- NULLs are distinct (PostgreSQL default), so issued keys (hash NULL) never collide.
CREATE UNIQUE INDEX api_keys_nid_hash_key ON api_keys (nid, hash);
-- Idempotent creation; NULL request ids never collide.
CREATE UNIQUE INDEX api_keys_nid_kind_request_id_key ON api_keys (nid, kind, request_id);
-- List filtered by actor, ordered by key_id.
CREATE INDEX api_keys_nid_kind_actor_id_key_id_idx ON api_keys (nid, kind, actor_id, key_id);
-- List without actor filter, ordered by key_id.
CREATE INDEX api_keys_nid_kind_key_id_idx ON api_keys (nid, kind, key_id);
-- count_active (quota checks): an index-only count of one network's stored-active rows.
CREATE INDEX api_keys_nid_status_expire_time_idx ON api_keys (nid, status, expire_time);
