-- marquee PostgreSQL schema, version 3: per-endpoint delivery counters, so
-- endpoint stats cost the same however long the endpoint's history is.
-- Event counts: a delivery resent and delivered again counts twice.
CREATE TABLE IF NOT EXISTS endpoint_counters (
    endpoint_id TEXT PRIMARY KEY,
    delivered BIGINT NOT NULL DEFAULT 0,
    exhausted BIGINT NOT NULL DEFAULT 0
);
INSERT INTO endpoint_counters (endpoint_id, delivered, exhausted)
    SELECT endpoint_id, COUNT(*) FILTER (WHERE state = 'delivered'), COUNT(*) FILTER (WHERE state = 'exhausted')
    FROM deliveries GROUP BY endpoint_id
ON CONFLICT (endpoint_id) DO NOTHING;
