-- marquee PostgreSQL schema, version 1 (core: organizations, keys, the log).
CREATE TABLE IF NOT EXISTS meta (
    k TEXT PRIMARY KEY,
    v TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS orgs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    tier TEXT NOT NULL,
    name TEXT,
    public_prefix TEXT NOT NULL,
    digest BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX IF NOT EXISTS api_keys_prefix ON api_keys(public_prefix);
CREATE INDEX IF NOT EXISTS api_keys_org ON api_keys(org_id, created_at);

-- The log head: the last assigned seq and received_at. Publishing
-- transactions take the log lock (an advisory transaction lock), read and
-- advance this row, insert, and commit while still holding the lock, so seq
-- order is commit order across every node.
CREATE TABLE IF NOT EXISTS log_head (
    id INT PRIMARY KEY,
    seq BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    pruned_through BIGINT NOT NULL DEFAULT 0
);
INSERT INTO log_head (id, seq, received_at) VALUES (1, 0, 0) ON CONFLICT (id) DO NOTHING;

CREATE TABLE IF NOT EXISTS messages (
    seq BIGINT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    org_id TEXT NOT NULL,
    type TEXT NOT NULL,
    channels TEXT NOT NULL,
    data TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_org ON messages(org_id, seq);
CREATE INDEX IF NOT EXISTS messages_org_type ON messages(org_id, type, seq);
CREATE INDEX IF NOT EXISTS messages_received ON messages(received_at);

CREATE TABLE IF NOT EXISTS message_channels (
    org_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (org_id, channel, seq)
);

CREATE TABLE IF NOT EXISTS idempotency (
    org_id TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint BYTEA NOT NULL,
    seqs TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, key)
);
CREATE INDEX IF NOT EXISTS idempotency_created ON idempotency(created_at);
