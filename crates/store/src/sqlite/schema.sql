-- marquee SQLite schema, version 1.
CREATE TABLE IF NOT EXISTS meta (
    k TEXT PRIMARY KEY,
    v TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS orgs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    tier TEXT NOT NULL,
    name TEXT,
    public_prefix TEXT NOT NULL,
    digest BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS api_keys_prefix ON api_keys(public_prefix);
CREATE INDEX IF NOT EXISTS api_keys_org ON api_keys(org_id, created_at);

-- seq is the commit-order position; assigned by the single writer, which
-- also assigns received_at, non-decreasing in seq (so time bounds become seq
-- bounds by binary search, without an index of their own).
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    org_id TEXT NOT NULL,
    type TEXT NOT NULL,
    channels TEXT NOT NULL,
    data TEXT NOT NULL,
    occurred_at INTEGER NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_org ON messages(org_id, seq);
CREATE INDEX IF NOT EXISTS messages_org_type ON messages(org_id, type, seq);

CREATE TABLE IF NOT EXISTS message_channels (
    org_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (org_id, channel, seq)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS idempotency (
    org_id TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    seqs TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_created ON idempotency(created_at);
