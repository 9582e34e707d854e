-- marquee PostgreSQL schema, version 4: organization profiles, organization-
-- defined event types, and a per-key stream connection limit.
-- Enabled profiles, sorted and unique.
ALTER TABLE orgs ADD COLUMN IF NOT EXISTS profiles TEXT[] NOT NULL DEFAULT '{}';
-- NULL: the key's tier default applies (BIGINT: any u32 fits).
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS max_stream_connections BIGINT;
-- Event types an organization defines; `schema` is JSON text, kept as sent.
CREATE TABLE IF NOT EXISTS event_types (
    org_id TEXT NOT NULL REFERENCES orgs(id),
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    schema TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, name)
);
