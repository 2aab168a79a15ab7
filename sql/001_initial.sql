-- The four tables of the seed document, with what correctness needs on top of the seed's
-- columns, and the flush bookkeeping. Forward-only: a later change is a new numbered file.

CREATE TABLE cache_entries (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    key           text NOT NULL,
    namespace     text NOT NULL,
    tags          text[] NOT NULL DEFAULT '{}',
    ttl           integer,                       -- seconds as set; NULL = no expiry
    hit_count     bigint NOT NULL DEFAULT 0,
    last_accessed timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    size_bytes    integer,
    stored_bytes  integer,
    CONSTRAINT cache_entries_namespace_key UNIQUE (namespace, key)
);
CREATE INDEX cache_entries_top_keys ON cache_entries (namespace, hit_count DESC);

CREATE TABLE cache_sessions (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id    text NOT NULL UNIQUE,
    user_id       uuid NOT NULL,
    data          jsonb NOT NULL DEFAULT '{}',
    ttl           integer NOT NULL,
    last_accessed timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX cache_sessions_user ON cache_sessions (user_id, expires_at);
CREATE INDEX cache_sessions_expiry ON cache_sessions (expires_at);

CREATE TABLE cache_metrics (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    metric_name  text NOT NULL,
    metric_value numeric NOT NULL,
    namespace    text NOT NULL,
    "timestamp"  timestamptz NOT NULL,             -- the start of the sample's minute
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT cache_metrics_sample UNIQUE (metric_name, namespace, "timestamp")
);
CREATE INDEX cache_metrics_window ON cache_metrics ("timestamp", namespace);

CREATE TABLE cache_configurations (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    namespace     text NOT NULL UNIQUE,
    configuration jsonb NOT NULL DEFAULT '{}',
    status        text NOT NULL DEFAULT 'active',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- One row per flush batch applied: the key of the exactly-once effect. A batch whose id is
-- already here was applied by an earlier (killed or redelivered) run and is not applied again.
CREATE TABLE flush_batches (
    id         text PRIMARY KEY,
    kind       text NOT NULL,
    items      integer NOT NULL DEFAULT 0,
    applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX flush_batches_applied ON flush_batches (applied_at);

