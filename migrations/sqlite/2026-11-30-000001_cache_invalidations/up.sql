-- Cache evictions that could not reach the shared cache (Redis) when their mutation committed
-- (see the PostgreSQL migration).
CREATE TABLE cache_invalidations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    nid         TEXT NOT NULL,
    cache_key   TEXT NOT NULL,
    create_time BIGINT NOT NULL
);
