-- marquee PostgreSQL schema, version 5 (erasure, issue 11): erasures and the recently erased seqs.
-- status: running | completed. lease_token/lease_until: the worker holding it.
CREATE TABLE IF NOT EXISTS erasures (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    within TEXT,
    status TEXT NOT NULL,
    messages_erased BIGINT NOT NULL DEFAULT 0,
    messages_total BIGINT NOT NULL DEFAULT 0,
    through_seq BIGINT NOT NULL,
    done_through BIGINT NOT NULL DEFAULT 0,
    lease_token TEXT,
    lease_until BIGINT,
    created_at BIGINT NOT NULL,
    completed_at BIGINT
);
CREATE INDEX IF NOT EXISTS erasures_org ON erasures(org_id, id);
CREATE INDEX IF NOT EXISTS erasures_running ON erasures(status, id);
-- Seqs erased in the last minutes, read by every node to drop what it holds in memory.
CREATE TABLE IF NOT EXISTS erased_seqs (
    seq BIGINT PRIMARY KEY,
    erased_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS erased_seqs_at ON erased_seqs(erased_at);
