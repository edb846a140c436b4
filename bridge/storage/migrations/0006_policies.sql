-- Services that manage themselves: autoscaler, schedule windows, idle sleep (docs/policies.md).
--
-- 1. What each gateway replica counts per service, upserted every couple of seconds in one
--    statement (never per request). The bridge sums the rows that are fresh; a gateway that
--    stops publishing drops out after a few intervals. Not foreign keys: a deleted group's
--    rows go at the gateway's next publish.
CREATE TABLE gateway_signals (
    gateway_id       text NOT NULL CHECK (length(gateway_id) BETWEEN 1 AND 200),
    group_id         text NOT NULL,
    inflight         integer NOT NULL CHECK (inflight >= 0),
    waiting          integer NOT NULL CHECK (waiting >= 0),
    requests         bigint NOT NULL CHECK (requests >= 0),  -- since that gateway started
    last_request_at  timestamptz,
    -- task id -> requests in flight there, for draining a replica before it is removed
    backends         jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (gateway_id, group_id)
);
CREATE INDEX gateway_signals_group_idx ON gateway_signals (group_id, updated_at);

-- 2. Each engine's own load as its agent last read it (agent_plugin/engine_metrics.py):
--    {"metrics": {"waiting": 2, "running": 5, "kv_cache_usage": 0.4}} or {"missing": why}.
ALTER TABLE tasks
    ADD COLUMN engine_metrics     jsonb,
    ADD COLUMN engine_metrics_at  timestamptz;

-- 3. What the policy loop last decided for a service, shown in its status.
CREATE TABLE service_policy_state (
    group_id         text PRIMARY KEY REFERENCES task_groups (id) ON DELETE CASCADE,
    decision         text NOT NULL DEFAULT '',
    decided_at       timestamptz,
    last_scaled_at   timestamptz,
    window_inside    boolean,
    window_note      text NOT NULL DEFAULT '',
    next_transition  timestamptz,
    idle_note        text NOT NULL DEFAULT ''
);
