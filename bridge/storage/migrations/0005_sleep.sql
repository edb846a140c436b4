-- How a sleeping task sleeps: "vllm"/"sglang" release GPU memory; "paused" keeps it
-- (compute paused only). Placement counts a released task's GPUs as free.
ALTER TABLE tasks
    ADD COLUMN sleep_mode text CHECK (sleep_mode IN ('vllm', 'sglang', 'paused')),
    ADD COLUMN gpu_released boolean NOT NULL DEFAULT false;
