-- Holding up under load (gateway).
--
-- A model route's bound on the time to the first byte of an upstream answer (seconds; NULL:
-- the gateway's HETEROFLOW_FIRST_BYTE_TIMEOUT_S). Long prompts on slow engines need more;
-- an interactive route wants a stopped engine found out sooner. Nothing reached the client
-- before the first byte, so the gateway retries elsewhere when the bound passes.
ALTER TABLE model_routes
    ADD COLUMN first_byte_timeout_s real
        CHECK (first_byte_timeout_s > 0 AND first_byte_timeout_s <= 3600);
