-- Holding up under load (gateway).
--
-- A model route's bound on the time to the first byte of an upstream answer (seconds; NULL:
-- the gateway's HETEROFLOW_FIRST_BYTE_TIMEOUT_S). Long prompts on slow engines need more;
-- an interactive route wants a stopped engine found out sooner. Nothing reached the client
-- before the first byte, so the gateway retries elsewhere when the bound passes.
ALTER TABLE model_routes
    ADD COLUMN first_byte_timeout_s real
        CHECK (first_byte_timeout_s > 0 AND first_byte_timeout_s <= 3600);

-- An external route has an endpoint of its own, and so keys of its own, like a service: a
-- model that exists only as an external route can be called. Exactly one of the two
-- targets is set; the endpoint goes with its route.
ALTER TABLE inference_endpoints
    ALTER COLUMN task_group_id DROP NOT NULL,
    ADD COLUMN model_route_id text UNIQUE REFERENCES model_routes (id) ON DELETE CASCADE,
    ADD CONSTRAINT inference_endpoints_one_target
        CHECK ((task_group_id IS NULL) <> (model_route_id IS NULL));
