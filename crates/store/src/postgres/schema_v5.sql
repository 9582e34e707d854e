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
