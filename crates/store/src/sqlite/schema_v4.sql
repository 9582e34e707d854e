-- marquee SQLite schema, version 4: organization profiles, organization-
-- defined event types, and a per-key stream connection limit.
-- Enabled profiles: a JSON array of names, sorted and unique.
ALTER TABLE orgs ADD COLUMN profiles TEXT NOT NULL DEFAULT '[]';
-- NULL: the key's tier default applies.
ALTER TABLE api_keys ADD COLUMN max_stream_connections INTEGER;
-- Event types an organization defines; `schema` is JSON text, kept as sent.
CREATE TABLE IF NOT EXISTS event_types (
    org_id TEXT NOT NULL REFERENCES orgs(id),
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    schema TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, name)
) WITHOUT ROWID;
