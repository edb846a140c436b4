-- HeteroFlow schema, version 1.
-- Status columns are constrained to the values the domain's transition tables know;
-- the tables in bridge/domain/status.py are the source of truth for the *moves*.

CREATE TABLE users (
    id          text PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    role        text NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    disabled    boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- A user's bearer tokens for /api/v1. Only a SHA-256 of the token is kept.
CREATE TABLE api_tokens (
    id            text PRIMARY KEY,
    user_id       text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          text NOT NULL,
    token_prefix  text NOT NULL,
    token_hash    text NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id);

CREATE TABLE task_groups (
    id                       text PRIMARY KEY,
    name                     text NOT NULL UNIQUE,
    status                   text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'scheduling', 'running', 'sleeping', 'completed', 'failed')),
    status_reason            text NOT NULL DEFAULT '',
    parallelism              text NOT NULL
        CHECK (parallelism IN ('none', 'tensor_parallel', 'split', 'data_parallel')),
    world_size               integer NOT NULL CHECK (world_size BETWEEN 1 AND 512),
    node_count               integer NOT NULL CHECK (node_count >= 1),
    current_replicas         integer NOT NULL DEFAULT 0 CHECK (current_replicas >= 0),
    min_replicas             integer NOT NULL DEFAULT 1 CHECK (min_replicas >= 1),
    max_replicas             integer NOT NULL DEFAULT 0 CHECK (max_replicas >= 0),
    auto_scale               boolean NOT NULL DEFAULT false,
    endpoint_id              text,
    rolling_update_state     text NOT NULL DEFAULT 'idle'
        CHECK (rolling_update_state IN ('idle', 'rolling', 'completed', 'failed', 'rollback')),
    idle_timeout_minutes     integer NOT NULL DEFAULT 0 CHECK (idle_timeout_minutes >= 0),
    timeout_seconds          integer NOT NULL DEFAULT 0 CHECK (timeout_seconds >= 0),
    image                    text NOT NULL,
    engine                   text,
    command                  text,
    model_path               text NOT NULL,
    model_name               text NOT NULL,
    gpu_required             integer NOT NULL CHECK (gpu_required BETWEEN 0 AND 64),
    gpu_type                 text,
    ports                    jsonb NOT NULL,
    qos                      text NOT NULL DEFAULT 'gold' CHECK (qos IN ('gold', 'silver', 'bronze')),
    estimated_gpu_memory_mb  integer CHECK (estimated_gpu_memory_mb >= 0),
    enable_api               boolean NOT NULL DEFAULT true,
    health_check             jsonb NOT NULL,
    scale_policy             jsonb,
    co_schedule              jsonb,
    schedule_window          jsonb,
    created_by               text,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    CHECK (max_replicas = 0 OR max_replicas >= min_replicas)
);
CREATE INDEX task_groups_status_idx ON task_groups (status);
CREATE INDEX task_groups_created_idx ON task_groups (created_at DESC, id DESC);

CREATE TABLE tasks (
    id                       text PRIMARY KEY,
    group_id                 text NOT NULL REFERENCES task_groups (id) ON DELETE CASCADE,
    rank                     integer NOT NULL CHECK (rank >= 0),
    status                   text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'scheduled', 'starting', 'running', 'sleeping', 'waking',
                          'stopping', 'completed', 'failed')),
    status_reason            text NOT NULL DEFAULT '',
    image                    text NOT NULL,
    gpu_required             integer NOT NULL CHECK (gpu_required BETWEEN 0 AND 512),
    gpu_type                 text,
    gpu_id                   text,
    node_id                  text,
    model_path               text NOT NULL,
    ports                    jsonb NOT NULL,
    volumes                  jsonb NOT NULL DEFAULT '[]'::jsonb,
    estimated_gpu_memory_mb  integer CHECK (estimated_gpu_memory_mb >= 0),
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    UNIQUE (group_id, rank)
);
CREATE INDEX tasks_status_idx ON tasks (status);
CREATE INDEX tasks_node_idx ON tasks (node_id) WHERE node_id IS NOT NULL;

CREATE TABLE inference_endpoints (
    id             text PRIMARY KEY,
    name           text NOT NULL UNIQUE,
    task_group_id  text NOT NULL UNIQUE REFERENCES task_groups (id) ON DELETE CASCADE,
    protocol       text NOT NULL DEFAULT 'http' CHECK (protocol IN ('http')),
    port           integer NOT NULL CHECK (port BETWEEN 1 AND 65535),
    algorithm      text NOT NULL DEFAULT 'round_robin'
        CHECK (algorithm IN ('round_robin', 'random', 'least_connections')),
    health_check   jsonb NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- The group points back at its endpoint; deferred so both rows can be written in one
-- transaction in either order.
ALTER TABLE task_groups
    ADD CONSTRAINT task_groups_endpoint_fk FOREIGN KEY (endpoint_id)
    REFERENCES inference_endpoints (id) ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED;

CREATE TABLE model_routes (
    id             text PRIMARY KEY,
    model_name     text NOT NULL,
    task_group_id  text NOT NULL REFERENCES task_groups (id) ON DELETE CASCADE,
    engine         text,
    priority       integer NOT NULL DEFAULT 0 CHECK (priority BETWEEN 0 AND 1000),
    weight         integer NOT NULL DEFAULT 100 CHECK (weight BETWEEN 0 AND 100),
    version        text NOT NULL DEFAULT 'v1',
    algorithm      text CHECK (algorithm IN ('round_robin', 'random', 'least_connections')),
    status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (model_name, version)
);
CREATE INDEX model_routes_group_idx ON model_routes (task_group_id);

-- Client keys for the OpenAI gateway (sk-{uuid}); only a SHA-256 of the key is kept.
CREATE TABLE api_keys (
    id            text PRIMARY KEY,
    endpoint_id   text NOT NULL REFERENCES inference_endpoints (id) ON DELETE CASCADE,
    name          text NOT NULL,
    key_prefix    text NOT NULL,
    key_hash      text NOT NULL UNIQUE,
    created_by    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX api_keys_endpoint_idx ON api_keys (endpoint_id);

-- Who did what, when, to which object. Object ids are plain text, not foreign keys,
-- so the trail outlives the objects it describes.
CREATE TABLE audit_log (
    id           bigserial PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    actor_id     text,
    actor_name   text NOT NULL,
    action       text NOT NULL,
    object_type  text NOT NULL,
    object_id    text NOT NULL,
    details      jsonb NOT NULL DEFAULT '{}'::jsonb,
    request_id   text
);
CREATE INDEX audit_log_at_idx ON audit_log (at DESC, id DESC);
CREATE INDEX audit_log_object_idx ON audit_log (object_type, object_id);
