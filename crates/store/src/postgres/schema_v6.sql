-- marquee PostgreSQL schema, version 6: an organization's own event types
-- carry their per-type rules (dedup, coalesce, project, attendance, drop) as
-- one JSON object beside the schema, written with the type in one statement.
-- The version-5 `coalesce_rules` table held only `coalesce`; its rows are
-- copied into the new column. The table stays (unused from v6 on), so a
-- version-5 node still running during an upgrade keeps reading it instead
-- of failing every catalog load; a later version drops it.
ALTER TABLE event_types ADD COLUMN IF NOT EXISTS rules TEXT;
UPDATE event_types e SET rules = json_build_object(
    'coalesce', json_build_object('key', c.key, 'window_ms', c.window_ms)
)::text
FROM coalesce_rules c WHERE c.org_id = e.org_id AND c.type = e.name;
-- The dedup keys of the publishes a pending coalescing window took (a type
-- with both rules): recorded for the committed message when the window
-- closes, so a publish re-sent after its window is a duplicate of that
-- message instead of opening a new window with old data.
CREATE TABLE IF NOT EXISTS coalesce_pending_keys (
    message_id TEXT NOT NULL,
    key BYTEA NOT NULL,
    window_us BIGINT,
    PRIMARY KEY (message_id, key)
);
