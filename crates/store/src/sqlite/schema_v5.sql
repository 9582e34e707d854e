-- marquee SQLite schema, version 5 (erasure, issue 11): erasures and the recently erased seqs.
-- status: running | completed. lease_token/lease_until: the worker holding it.
CREATE TABLE IF NOT EXISTS erasures (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    within TEXT,
    status TEXT NOT NULL,
    messages_erased INTEGER NOT NULL DEFAULT 0,
    messages_total INTEGER NOT NULL DEFAULT 0,
    through_seq INTEGER NOT NULL,
    done_through INTEGER NOT NULL DEFAULT 0,
    lease_token TEXT,
    lease_until INTEGER,
    created_at INTEGER NOT NULL,
    completed_at INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS erasures_org ON erasures(org_id, id);
CREATE INDEX IF NOT EXISTS erasures_running ON erasures(status, id);
-- Seqs erased in the last minutes, read by every node to drop what it holds in memory.
CREATE TABLE IF NOT EXISTS erased_seqs (
    seq INTEGER PRIMARY KEY,
    erased_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS erased_seqs_at ON erased_seqs(erased_at);
