-- marquee SQLite schema, version 3: per-endpoint delivery counters, so
-- endpoint stats cost the same however long the endpoint's history is.
-- Event counts: a delivery resent and delivered again counts twice.
CREATE TABLE IF NOT EXISTS endpoint_counters (
    endpoint_id TEXT PRIMARY KEY,
    delivered INTEGER NOT NULL DEFAULT 0,
    exhausted INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
INSERT OR IGNORE INTO endpoint_counters (endpoint_id, delivered, exhausted)
    SELECT endpoint_id, SUM(state = 'delivered'), SUM(state = 'exhausted') FROM deliveries GROUP BY endpoint_id;
