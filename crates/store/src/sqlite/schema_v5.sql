-- Eventory (ticket-inventory monitor): last snapshot per key, watchlists, cooldowns.
-- The last inventory snapshot per (org, website, event, region): the text
-- the next one is diffed against, written in the same commit.
CREATE TABLE IF NOT EXISTS eventory_snapshots (
    org_id TEXT NOT NULL,
    website TEXT NOT NULL,
    event_id TEXT NOT NULL,
    region TEXT NOT NULL,
    data TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, website, event_id, region)
) WITHOUT ROWID;
-- Watchlist entries per API key (the client identity); `entry` is JSON.
CREATE TABLE IF NOT EXISTS eventory_watchlist (
    id TEXT NOT NULL PRIMARY KEY,
    org_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    entry TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS eventory_watchlist_key ON eventory_watchlist (key_id, created_at, id);
-- Notification content sent to an identity, and when (the cooldown).
CREATE TABLE IF NOT EXISTS eventory_cooldowns (
    key_id TEXT NOT NULL,
    content BLOB NOT NULL,
    sent_at INTEGER NOT NULL,
    PRIMARY KEY (key_id, content)
) WITHOUT ROWID;
