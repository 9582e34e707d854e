-- marquee SQLite schema, version 6: an organization's own event types carry
-- their per-type rules (dedup, coalesce, project, attendance, drop) as one
-- JSON object beside the schema, written with the type in one statement.
-- The version-5 `coalesce_rules` table held only `coalesce`; its rows move
-- into the new column.
ALTER TABLE event_types ADD COLUMN rules TEXT;
UPDATE event_types SET rules = (
    SELECT json_object('coalesce', json_object('key', c.key, 'window_ms', c.window_ms))
    FROM coalesce_rules c WHERE c.org_id = event_types.org_id AND c.type = event_types.name
);
DROP TABLE IF EXISTS coalesce_rules;
