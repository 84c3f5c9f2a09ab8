-- Cache evictions that could not reach the shared cache (Redis) when their mutation committed.
-- Every node polls this table and trusts the shared cache only while it finds it empty; whichever
-- node reaches Redis applies the eviction and deletes the row (docs/ARCHITECTURE.md, "Revocation
-- integrity").
CREATE TABLE cache_invalidations (
    id          BIGSERIAL PRIMARY KEY,
    nid         TEXT COLLATE "C" NOT NULL,
    cache_key   TEXT COLLATE "C" NOT NULL,
    create_time BIGINT NOT NULL
);
