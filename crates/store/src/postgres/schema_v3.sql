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
-- Attempts per endpoint per minute (minute = started_at µs / 60,000,000), for
-- the last-hour success rate; minutes older than two hours are pruned.
CREATE TABLE IF NOT EXISTS endpoint_minutes (
    endpoint_id TEXT NOT NULL,
    minute BIGINT NOT NULL,
    succeeded BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (endpoint_id, minute)
);
-- Pruning deletes old minutes across all endpoints.
CREATE INDEX IF NOT EXISTS endpoint_minutes_minute ON endpoint_minutes(minute);
INSERT INTO endpoint_minutes (endpoint_id, minute, succeeded, failed)
    SELECT endpoint_id, started_at / 60000000, COUNT(*) FILTER (WHERE succeeded), COUNT(*) FILTER (WHERE NOT succeeded)
    FROM attempts
    WHERE started_at >= (extract(epoch FROM now())::bigint - 7200) * 1000000
    GROUP BY 1, 2
ON CONFLICT (endpoint_id, minute) DO NOTHING;
