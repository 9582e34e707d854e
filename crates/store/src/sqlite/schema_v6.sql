-- marquee SQLite schema, version 6: an organization's own event types carry
-- their per-type rules (dedup, coalesce, project, attendance, drop) as one
-- JSON object beside the schema, written with the type in one statement.
-- The version-5 `coalesce_rules` table held only `coalesce`; its rows are
-- copied into the new column. The table stays (unused from v6 on), so a
-- version-5 node still running during an upgrade keeps reading it instead
-- of failing every catalog load; a later version drops it.
ALTER TABLE event_types ADD COLUMN rules TEXT;
UPDATE event_types SET rules = (
    SELECT json_object('coalesce', json_object('key', c.key, 'window_ms', c.window_ms))
    FROM coalesce_rules c WHERE c.org_id = event_types.org_id AND c.type = event_types.name
);
-- Door scans keyed by their message's seq (rowid: rows are appended in
-- order, and the erasure finds a message's scan by it), the dedup tuple
-- as a unique index, and the time index of the check-ins listing (the
-- rowid orders ties): one B-tree fewer than v5's WITHOUT ROWID table with
-- its `by_seq` index, on the hot path of every check-in.
CREATE TABLE attendance_scans_v6 (
    seq INTEGER PRIMARY KEY,
    org_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    person TEXT NOT NULL,
    direction TEXT NOT NULL,
    at INTEGER NOT NULL,
    gate TEXT,
    message_id TEXT NOT NULL,
    received_at INTEGER NOT NULL
);
INSERT INTO attendance_scans_v6 (seq, org_id, event_id, person, direction, at, gate, message_id, received_at)
    SELECT seq, org_id, event_id, person, direction, at, gate, message_id, received_at FROM attendance_scans;
DROP TABLE attendance_scans;
ALTER TABLE attendance_scans_v6 RENAME TO attendance_scans;
CREATE UNIQUE INDEX attendance_scans_key ON attendance_scans (org_id, event_id, person, direction, at);
CREATE INDEX attendance_scans_by_time ON attendance_scans (org_id, event_id, at);
-- The dedup keys of the publishes a pending coalescing window took (a type
-- with both rules): recorded for the committed message when the window
-- closes, so a publish re-sent after its window is a duplicate of that
-- message instead of opening a new window with old data.
CREATE TABLE IF NOT EXISTS coalesce_pending_keys (
    message_id TEXT NOT NULL,
    key BLOB NOT NULL,
    window_us INTEGER,
    PRIMARY KEY (message_id, key)
) WITHOUT ROWID;
