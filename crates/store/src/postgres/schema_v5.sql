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
