-- v5 (attendance): the attendance engine's and Revolution drops' read models; every row keeps the seq of the message it came from.
CREATE TABLE IF NOT EXISTS attendance_scans (
    org_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    person TEXT NOT NULL,
    direction TEXT NOT NULL,
    at INTEGER NOT NULL,
    gate TEXT,
    seq INTEGER NOT NULL,
    message_id TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, event_id, person, direction, at)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS attendance_scans_by_time ON attendance_scans (org_id, event_id, at, seq);
CREATE INDEX IF NOT EXISTS attendance_scans_by_seq ON attendance_scans (seq);
CREATE TABLE IF NOT EXISTS attendance_events (
    org_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    count INTEGER NOT NULL DEFAULT 0,
    capacity INTEGER,
    venue_id TEXT,
    opened_at INTEGER,
    last_checkin_at INTEGER,
    seq INTEGER NOT NULL,
    PRIMARY KEY (org_id, event_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS attendance_gates (
    org_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    gate TEXT NOT NULL,
    count INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (org_id, event_id, gate)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS attendance_milestones (
    org_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    threshold INTEGER NOT NULL,
    count INTEGER NOT NULL,
    at INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (org_id, event_id, threshold)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS attendance_settings (
    org_id TEXT PRIMARY KEY,
    counts TEXT NOT NULL,
    percents TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS venues (
    org_id TEXT NOT NULL,
    venue_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    opened_at INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (org_id, venue_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS drops (
    org_id TEXT NOT NULL,
    drop_id TEXT NOT NULL,
    artist_id TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    data TEXT NOT NULL,
    published_at INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (org_id, drop_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS drops_by_artist ON drops (org_id, artist_id, seq);
CREATE TABLE IF NOT EXISTS drop_claims (
    org_id TEXT NOT NULL,
    drop_id TEXT NOT NULL,
    claim_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (org_id, drop_id, claim_id)
) WITHOUT ROWID;
