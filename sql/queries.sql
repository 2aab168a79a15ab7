-- Named queries. Each block starts with "-- name: <name>"; parameters are %(name)s.

-- name: claim_batch
-- The exactly-once gate: a batch id already present was applied by an earlier run.
INSERT INTO flush_batches (id, kind, items)
VALUES (%(batch_id)s, %(kind)s, %(items)s)
ON CONFLICT (id) DO NOTHING
RETURNING id

-- name: create_entry_stage
CREATE TEMP TABLE entry_stage (
    namespace     text NOT NULL,
    key           text NOT NULL,
    -- live: the entry exists, its metadata was read; hits: only counts changed (metadata
    -- unchanged, not read); gone: deleted, invalidated or expired in Redis.
    state         text NOT NULL,
    tags          text[],
    ttl           integer,
    expires_at    timestamptz,
    created_at    timestamptz,
    updated_at    timestamptz,
    size_bytes    integer,
    stored_bytes  integer,
    hits          bigint NOT NULL,
    last_accessed timestamptz
) ON COMMIT DROP

-- name: copy_entry_stage
COPY entry_stage (namespace, key, state, tags, ttl, expires_at, created_at, updated_at,
                  size_bytes, stored_bytes, hits, last_accessed) FROM STDIN

-- name: upsert_entries
-- Live entries: current metadata replaces the row's, hits are added, last access only moves on.
INSERT INTO cache_entries AS e (namespace, key, tags, ttl, expires_at, created_at, updated_at,
                                size_bytes, stored_bytes, hit_count, last_accessed)
SELECT namespace, key, tags, ttl, expires_at, created_at, updated_at,
       size_bytes, stored_bytes, hits, last_accessed
FROM entry_stage
WHERE state = 'live'
ON CONFLICT (namespace, key) DO UPDATE SET
    tags = EXCLUDED.tags,
    ttl = EXCLUDED.ttl,
    expires_at = EXCLUDED.expires_at,
    created_at = EXCLUDED.created_at,
    updated_at = EXCLUDED.updated_at,
    size_bytes = EXCLUDED.size_bytes,
    stored_bytes = EXCLUDED.stored_bytes,
    hit_count = e.hit_count + EXCLUDED.hit_count,
    last_accessed = GREATEST(e.last_accessed, EXCLUDED.last_accessed)

-- name: upsert_hits
-- Entries whose metadata did not change: only counts and last access move.
INSERT INTO cache_entries AS e (namespace, key, hit_count, last_accessed)
SELECT namespace, key, hits, last_accessed
FROM entry_stage
WHERE state = 'hits'
ON CONFLICT (namespace, key) DO UPDATE SET
    hit_count = e.hit_count + EXCLUDED.hit_count,
    last_accessed = GREATEST(e.last_accessed, EXCLUDED.last_accessed)

-- name: delete_gone_entries
-- Entries deleted, invalidated or expired in Redis leave cache_entries too.
DELETE FROM cache_entries AS e
USING entry_stage AS s
WHERE s.state = 'gone' AND e.namespace = s.namespace AND e.key = s.key

-- name: create_metric_stage
CREATE TEMP TABLE metric_stage (
    metric_name  text NOT NULL,
    namespace    text NOT NULL,
    "timestamp"  timestamptz NOT NULL,
    metric_value numeric NOT NULL
) ON COMMIT DROP

-- name: copy_metric_stage
COPY metric_stage (metric_name, namespace, "timestamp", metric_value) FROM STDIN

-- name: upsert_metrics
INSERT INTO cache_metrics AS m (metric_name, namespace, "timestamp", metric_value)
SELECT metric_name, namespace, "timestamp", sum(metric_value)
FROM metric_stage
GROUP BY metric_name, namespace, "timestamp"
ON CONFLICT (metric_name, namespace, "timestamp") DO UPDATE SET
    metric_value = m.metric_value + EXCLUDED.metric_value

-- name: batch_applied
SELECT EXISTS (SELECT 1 FROM flush_batches WHERE id = %(batch_id)s)

-- name: metric_totals
-- Sums per namespace and metric over a window (namespace NULL = every namespace).
SELECT namespace, metric_name, sum(metric_value)
FROM cache_metrics
WHERE "timestamp" > %(date_from)s AND "timestamp" <= %(date_to)s
  AND (%(namespace)s::text IS NULL OR namespace = %(namespace)s)
GROUP BY namespace, metric_name

-- name: top_keys
SELECT namespace, key, hit_count, last_accessed
FROM cache_entries
WHERE (%(namespace)s::text IS NULL OR namespace = %(namespace)s)
ORDER BY hit_count DESC, key
LIMIT %(top)s

-- name: average_ttl
SELECT namespace, avg(ttl)
FROM cache_entries
WHERE ttl IS NOT NULL AND (%(namespace)s::text IS NULL OR namespace = %(namespace)s)
GROUP BY namespace

-- name: delete_expired_entries
-- Rows of entries that expired in Redis without a change being flushed; bounded per run.
DELETE FROM cache_entries
WHERE id IN (
    SELECT id FROM cache_entries WHERE expires_at < now() LIMIT %(limit)s
)

-- name: delete_old_flush_batches
-- A batch id is only ever retried while its Redis batch exists, within minutes; keep a week.
DELETE FROM flush_batches WHERE applied_at < now() - interval '7 days'

-- name: ping
SELECT 1

-- name: all_configurations
SELECT namespace, configuration, status, created_at, updated_at
FROM cache_configurations
ORDER BY namespace

-- name: get_configuration
SELECT namespace, configuration, status, created_at, updated_at
FROM cache_configurations
WHERE namespace = %(namespace)s

-- name: put_configuration
-- Returns whether the row is new (xmax = 0 on an inserted row).
INSERT INTO cache_configurations AS c (namespace, configuration, status)
VALUES (%(namespace)s, %(configuration)s, %(status)s)
ON CONFLICT (namespace) DO UPDATE SET
    configuration = EXCLUDED.configuration,
    status = EXCLUDED.status,
    updated_at = now()
RETURNING namespace, configuration, status, created_at, updated_at, (xmax = 0) AS created

-- name: lock_configuration
-- Serialises read-modify-write of one namespace's configuration (PATCH).
SELECT pg_advisory_xact_lock(hashtext('cache_configurations:' || %(namespace)s))

-- name: delete_configuration
DELETE FROM cache_configurations WHERE namespace = %(namespace)s RETURNING namespace

-- name: dictionaries_after
SELECT id, namespace, data FROM compression_dictionaries WHERE id > %(after)s ORDER BY id

-- name: latest_dictionaries
SELECT DISTINCT ON (namespace) namespace, id
FROM compression_dictionaries
ORDER BY namespace, id DESC

-- name: insert_dictionary
INSERT INTO compression_dictionaries (namespace, data, samples)
VALUES (%(namespace)s, %(data)s, %(samples)s)
RETURNING id, created_at

-- name: insert_session
INSERT INTO cache_sessions (session_id, user_id, data, ttl, last_accessed, created_at,
                            updated_at, expires_at)
VALUES (%(session_id)s, %(user_id)s, %(data)s, %(ttl)s, clock_timestamp(), clock_timestamp(),
        clock_timestamp(), clock_timestamp() + make_interval(secs => %(ttl)s::integer))
RETURNING session_id, user_id, data, ttl, created_at, updated_at, last_accessed, expires_at

-- name: live_session
SELECT session_id, user_id, data, ttl, created_at, updated_at, last_accessed, expires_at
FROM cache_sessions
WHERE session_id = %(session_id)s AND expires_at > clock_timestamp()

-- name: touch_session
-- The read path while Redis is unreachable: slide the expiry in Postgres itself.
UPDATE cache_sessions SET
    last_accessed = clock_timestamp(),
    expires_at = clock_timestamp() + make_interval(secs => ttl)
WHERE session_id = %(session_id)s AND expires_at > clock_timestamp()
RETURNING session_id, user_id, data, ttl, created_at, updated_at, last_accessed, expires_at

-- name: update_session
-- Top-level merge of data, in one statement: concurrent PATCHes of different fields both
-- survive (the row lock orders them). updated_at is the clock at execution, so the later
-- writer's version is the larger one.
-- Reads slide the expiry in Redis first (the workers bring it here later): the hot copy's
-- expiry, when there is one, keeps a session alive here too.
UPDATE cache_sessions SET
    data = data || %(data)s,
    ttl = coalesce(%(ttl)s, ttl),
    expires_at = CASE WHEN %(ttl)s::integer IS NULL
                      THEN GREATEST(expires_at, %(hot_expires_at)s::timestamptz)
                      ELSE clock_timestamp() + make_interval(secs => %(ttl)s::integer) END,
    updated_at = clock_timestamp()
WHERE session_id = %(session_id)s
  AND GREATEST(expires_at, %(hot_expires_at)s::timestamptz) > clock_timestamp()
RETURNING session_id, user_id, data, ttl, created_at, updated_at, last_accessed, expires_at

-- name: delete_session
DELETE FROM cache_sessions WHERE session_id = %(session_id)s
RETURNING session_id, user_id, expires_at > clock_timestamp() AS live

-- name: delete_user_sessions
DELETE FROM cache_sessions WHERE user_id = %(user_id)s
RETURNING session_id, expires_at > clock_timestamp() AS live

-- name: live_user_sessions
SELECT session_id, user_id, data, ttl, created_at, updated_at, last_accessed, expires_at
FROM cache_sessions
WHERE user_id = %(user_id)s AND expires_at > clock_timestamp()
ORDER BY created_at

-- name: record_session_access
-- Reads slid sessions in Redis; the workers bring last access and expiry here. GREATEST makes
-- a replayed batch harmless.
UPDATE cache_sessions AS s SET
    last_accessed = GREATEST(s.last_accessed, a.last_accessed),
    expires_at = GREATEST(s.expires_at, a.expires_at)
FROM (SELECT unnest(%(session_ids)s::text[]) AS session_id,
             unnest(%(last_accessed)s::timestamptz[]) AS last_accessed,
             unnest(%(expires_at)s::timestamptz[]) AS expires_at) AS a
WHERE s.session_id = a.session_id

-- name: delete_expired_sessions
-- Rows expired for longer than the grace period (sliding refreshes reach Postgres within a
-- flush interval; the grace keeps a slid session's row until then). Bounded per run.
DELETE FROM cache_sessions
WHERE id IN (
    SELECT id FROM cache_sessions
    WHERE expires_at < clock_timestamp() - make_interval(secs => %(grace_seconds)s)
    LIMIT %(limit)s
)
RETURNING session_id, user_id

-- name: applied_batches
SELECT id FROM flush_batches WHERE id = ANY(%(batch_ids)s)
