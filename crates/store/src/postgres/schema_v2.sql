-- marquee PostgreSQL schema, version 2: webhook endpoints, deliveries, attempts.
-- Same shape as SQLite's schema_v2.sql (times are microseconds since the
-- epoch in BIGINT columns, like the rest of the PostgreSQL schema).
CREATE TABLE IF NOT EXISTS endpoints (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    url TEXT NOT NULL,
    description TEXT,
    types TEXT NOT NULL,
    channels TEXT NOT NULL,
    format TEXT NOT NULL,
    rate_limit BIGINT,
    max_in_flight BIGINT NOT NULL,
    ordered BOOLEAN NOT NULL,
    enabled BOOLEAN NOT NULL,
    disabled_reason TEXT,
    secret BYTEA NOT NULL,
    prev_secret BYTEA,
    prev_secret_until BIGINT,
    failing_since BIGINT,
    notified_failing BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS endpoints_org ON endpoints(org_id, id);

-- One row per (endpoint, message). state: pending | delivered | exhausted.
-- claimed_until is the lease of the node attempting it: claims take rows
-- with `FOR UPDATE SKIP LOCKED` and set it, so each attempt has one node.
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    message_id TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    attempt_count BIGINT NOT NULL DEFAULT 0,
    next_at BIGINT NOT NULL,
    claimed_until BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
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
    attempt_no BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    duration_us BIGINT NOT NULL,
    status_code INT,
    succeeded BOOLEAN NOT NULL,
    error_kind TEXT,
    response_headers TEXT NOT NULL,
    response_body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_endpoint ON attempts(endpoint_id, id);
CREATE INDEX IF NOT EXISTS attempts_endpoint_ok ON attempts(endpoint_id, succeeded, started_at);
CREATE INDEX IF NOT EXISTS attempts_message ON attempts(message_id, id);
