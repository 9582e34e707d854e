-- v5 (rules, issue 11): per-type dedup keys and projected entities.
CREATE TABLE IF NOT EXISTS dedup (
    org_id     TEXT NOT NULL,
    key        BLOB NOT NULL,
    seq        INTEGER NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (org_id, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedup_seq ON dedup (seq);
CREATE INDEX IF NOT EXISTS dedup_expiry ON dedup (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS entities (
    org_id      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    entity_id   TEXT NOT NULL,
    version     INTEGER,
    deleted     INTEGER NOT NULL,
    data        TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    created_seq INTEGER NOT NULL,
    sort_at     INTEGER,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (org_id, kind, entity_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entities_sort ON entities (org_id, kind, sort_at, created_seq);
CREATE INDEX IF NOT EXISTS entities_seq ON entities (seq);
