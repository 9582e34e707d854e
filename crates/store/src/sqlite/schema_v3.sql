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
-- Attempts per endpoint per minute (minute = started_at µs / 60,000,000), for
-- the last-hour success rate; minutes older than two hours are pruned.
CREATE TABLE IF NOT EXISTS endpoint_minutes (
    endpoint_id TEXT NOT NULL,
    minute INTEGER NOT NULL,
    succeeded INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (endpoint_id, minute)
) WITHOUT ROWID;
-- Pruning deletes old minutes across all endpoints.
CREATE INDEX IF NOT EXISTS endpoint_minutes_minute ON endpoint_minutes(minute);
INSERT OR IGNORE INTO endpoint_minutes (endpoint_id, minute, succeeded, failed)
    SELECT endpoint_id, started_at / 60000000, SUM(succeeded), SUM(1 - succeeded) FROM attempts
    WHERE started_at >= (CAST(strftime('%s', 'now') AS INTEGER) - 7200) * 1000000
    GROUP BY 1, 2;
