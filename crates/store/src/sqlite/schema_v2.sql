-- marquee SQLite schema, version 2: webhook endpoints, deliveries, attempts.
CREATE TABLE IF NOT EXISTS endpoints (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    url TEXT NOT NULL,
    description TEXT,
    types TEXT NOT NULL,
    channels TEXT NOT NULL,
    format TEXT NOT NULL,
    rate_limit INTEGER,
    max_in_flight INTEGER NOT NULL,
    ordered INTEGER NOT NULL,
    enabled INTEGER NOT NULL,
    disabled_reason TEXT,
    secret BLOB NOT NULL,
    prev_secret BLOB,
    prev_secret_until INTEGER,
    failing_since INTEGER,
    notified_failing INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS endpoints_org ON endpoints(org_id, id);

-- One row per (endpoint, message). state: pending | delivered | exhausted.
-- claimed_until is the lease of the node attempting it.
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    message_id TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    attempt_count INTEGER NOT NULL DEFAULT 0,
    next_at INTEGER NOT NULL,
    claimed_until INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS deliveries_endpoint_seq ON deliveries(endpoint_id, seq);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries(endpoint_id, next_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS deliveries_ordered ON deliveries(endpoint_id, seq) WHERE state = 'pending';

CREATE TABLE IF NOT EXISTS attempts (
    id TEXT PRIMARY KEY,
    delivery_id TEXT NOT NULL,
    org_id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    message_id TEXT,
    attempt_no INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    duration_us INTEGER NOT NULL,
    status_code INTEGER,
    succeeded INTEGER NOT NULL,
    error_kind TEXT,
    response_headers TEXT NOT NULL,
    response_body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_endpoint ON attempts(endpoint_id, id);
CREATE INDEX IF NOT EXISTS attempts_endpoint_ok ON attempts(endpoint_id, succeeded, started_at);
CREATE INDEX IF NOT EXISTS attempts_message ON attempts(message_id, id);
