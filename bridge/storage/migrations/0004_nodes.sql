-- Nodes as their agents report them, and the service accounts that agents and gateways use.

-- agent: may only send heartbeats; gateway: may only wake sleeping tasks.
ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check
    CHECK (role IN ('admin', 'operator', 'viewer', 'agent', 'gateway'));

CREATE TABLE nodes (
    id                  text PRIMARY KEY,            -- the agent's stable node id
    name                text NOT NULL,
    status              text NOT NULL DEFAULT 'online' CHECK (status IN ('online', 'offline')),
    status_reason       text NOT NULL DEFAULT '',
    agent_url           text,                        -- where the bridge reaches the agent's API
    agent_secret_enc    text,                        -- Fernet token: the bridge's credential there
    nomad_node_id       text,
    facts               jsonb NOT NULL DEFAULT '{}'::jsonb,
    gpus                jsonb NOT NULL DEFAULT '[]'::jsonb,
    skipped_vendors     jsonb NOT NULL DEFAULT '{}'::jsonb,
    engines             jsonb NOT NULL DEFAULT '[]'::jsonb,
    models              jsonb NOT NULL DEFAULT '[]'::jsonb,
    models_updated_at   timestamptz,
    last_heartbeat      timestamptz NOT NULL DEFAULT now(),
    registered_by       text,                        -- the token's user
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX nodes_status_idx ON nodes (status, last_heartbeat);
