-- What the OpenAI gateway needs stored.
--
-- 1. A model route may target an external OpenAI-compatible base URL instead of a task group
--    (hybrid fallback to a cloud provider, or a fixed upstream for benchmarks). Exactly one of
--    task_group_id / upstream_url is set. The upstream's key is a Fernet token (key from
--    HETEROFLOW_SECRET_KEY or HETEROFLOW_HOME/secret-key); it is decrypted in memory only and
--    never returned by the API. upstream_model is the name the upstream serves the model under
--    (NULL: the route's model_name).
ALTER TABLE model_routes
    ALTER COLUMN task_group_id DROP NOT NULL,
    ADD COLUMN upstream_url            text
        CHECK (upstream_url ~ '^https?://[^\s/?#]+(/[^\s?#]*)?$' AND length(upstream_url) <= 2048),
    ADD COLUMN upstream_key_encrypted  text,
    ADD COLUMN upstream_model          text CHECK (length(upstream_model) BETWEEN 1 AND 256),
    ADD CONSTRAINT model_routes_one_target
        CHECK ((task_group_id IS NULL) <> (upstream_url IS NULL)),
    ADD CONSTRAINT model_routes_upstream_fields_need_url
        CHECK (upstream_url IS NOT NULL
               OR (upstream_key_encrypted IS NULL AND upstream_model IS NULL));

-- 2. Usage accounting: tokens per key and per route, per minute. Gateways aggregate in memory
--    and upsert in batches (never per request), so several replicas add into the same rows.
--    Ids are plain text, not foreign keys, so the numbers outlive revoked keys and deleted routes.
CREATE TABLE gateway_usage (
    minute             timestamptz NOT NULL,
    api_key_id         text NOT NULL,
    route_id           text NOT NULL,
    model_name         text NOT NULL,
    requests           bigint NOT NULL DEFAULT 0 CHECK (requests >= 0),
    errors             bigint NOT NULL DEFAULT 0 CHECK (errors >= 0),
    prompt_tokens      bigint NOT NULL DEFAULT 0 CHECK (prompt_tokens >= 0),
    completion_tokens  bigint NOT NULL DEFAULT 0 CHECK (completion_tokens >= 0),
    PRIMARY KEY (minute, api_key_id, route_id),
    CHECK (minute = date_trunc('minute', minute))
);
CREATE INDEX gateway_usage_key_idx ON gateway_usage (api_key_id, minute DESC);
CREATE INDEX gateway_usage_route_idx ON gateway_usage (route_id, minute DESC);
