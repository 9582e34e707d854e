-- v5 (rules, issue 11): per-type dedup keys and projected entities.
CREATE TABLE IF NOT EXISTS dedup (
    org_id     TEXT NOT NULL,
    key        BYTEA NOT NULL,
    seq        BIGINT NOT NULL,
    expires_at BIGINT,
    PRIMARY KEY (org_id, key)
);
CREATE INDEX IF NOT EXISTS dedup_seq ON dedup (seq);
CREATE INDEX IF NOT EXISTS dedup_expiry ON dedup (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS entities (
    org_id      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    entity_id   TEXT COLLATE "C" NOT NULL,
    version     BIGINT,
    deleted     INTEGER NOT NULL,
    data        TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    created_seq BIGINT NOT NULL,
    sort_at     BIGINT,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (org_id, kind, entity_id)
);
CREATE INDEX IF NOT EXISTS entities_sort ON entities (org_id, kind, sort_at, created_seq);
CREATE INDEX IF NOT EXISTS entities_seq ON entities (seq);
-- coalesce: messages of a coalesced type waiting for their window to close (one row per key).
CREATE TABLE IF NOT EXISTS coalesce_pending (
    org_id TEXT NOT NULL,
    type TEXT NOT NULL,
    key TEXT NOT NULL,
    message_id TEXT NOT NULL UNIQUE,
    channels TEXT NOT NULL,
    data TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    first_at BIGINT NOT NULL,
    due_at BIGINT NOT NULL,
    publishes BIGINT NOT NULL,
    PRIMARY KEY (org_id, type, key)
);
CREATE INDEX IF NOT EXISTS coalesce_pending_due ON coalesce_pending(due_at);
-- coalesce: the `coalesce` rule of an organization-defined event type (written by PUT /v1/event-types).
CREATE TABLE IF NOT EXISTS coalesce_rules (
    org_id TEXT NOT NULL,
    type TEXT NOT NULL,
    key TEXT NOT NULL,
    window_ms BIGINT NOT NULL,
    PRIMARY KEY (org_id, type)
);
-- Eventory (ticket-inventory monitor): last snapshot per key, watchlists, cooldowns.
-- The last inventory snapshot per (org, website, event, region): the text
-- the next one is diffed against, written in the same commit.
CREATE TABLE IF NOT EXISTS eventory_snapshots (
    org_id TEXT NOT NULL,
    website TEXT NOT NULL,
    event_id TEXT NOT NULL,
    region TEXT NOT NULL,
    data TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, website, event_id, region)
);
-- Watchlist entries per API key (the client identity); `entry` is JSON.
CREATE TABLE IF NOT EXISTS eventory_watchlist (
    id TEXT NOT NULL PRIMARY KEY,
    org_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    entry TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS eventory_watchlist_key ON eventory_watchlist (key_id, created_at, id);
-- Notification content sent to an identity, and when (the cooldown).
CREATE TABLE IF NOT EXISTS eventory_cooldowns (
    key_id TEXT NOT NULL,
    content BYTEA NOT NULL,
    sent_at BIGINT NOT NULL,
    PRIMARY KEY (key_id, content)
);
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
-- v5 (attendance): the attendance engine's and Revolution drops' read models; every row keeps the seq of the message it came from.
CREATE TABLE IF NOT EXISTS attendance_scans (
    org_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    person TEXT NOT NULL,
    direction TEXT NOT NULL,
    at BIGINT NOT NULL,
    gate TEXT,
    seq BIGINT NOT NULL,
    message_id TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, event_id, person, direction, at)
);
CREATE INDEX IF NOT EXISTS attendance_scans_by_time ON attendance_scans (org_id, event_id, at, seq);
CREATE INDEX IF NOT EXISTS attendance_scans_by_seq ON attendance_scans (seq);
CREATE TABLE IF NOT EXISTS attendance_events (
    org_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    count BIGINT NOT NULL DEFAULT 0,
    capacity BIGINT,
    venue_id TEXT,
    opened_at BIGINT,
    last_checkin_at BIGINT,
    seq BIGINT NOT NULL,
    PRIMARY KEY (org_id, event_id)
);
CREATE TABLE IF NOT EXISTS attendance_gates (
    org_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    gate TEXT NOT NULL,
    count BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (org_id, event_id, gate)
);
CREATE TABLE IF NOT EXISTS attendance_milestones (
    org_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    threshold BIGINT NOT NULL,
    count BIGINT NOT NULL,
    at BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (org_id, event_id, threshold)
);
CREATE TABLE IF NOT EXISTS attendance_settings (
    org_id TEXT PRIMARY KEY,
    counts TEXT NOT NULL,
    percents TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS venues (
    org_id TEXT NOT NULL,
    venue_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    opened_at BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (org_id, venue_id)
);
CREATE TABLE IF NOT EXISTS drops (
    org_id TEXT NOT NULL,
    drop_id TEXT NOT NULL,
    artist_id TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    data TEXT NOT NULL,
    published_at BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (org_id, drop_id)
);
CREATE INDEX IF NOT EXISTS drops_by_artist ON drops (org_id, artist_id, seq);
CREATE TABLE IF NOT EXISTS drop_claims (
    org_id TEXT NOT NULL,
    drop_id TEXT NOT NULL,
    claim_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (org_id, drop_id, claim_id)
);
