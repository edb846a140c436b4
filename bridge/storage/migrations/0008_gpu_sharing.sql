-- The GPU share a task holds without Nomad (docs/gpu-sharing.md, "Local placement"):
-- {"gpu": index, "share": n, "shares": K, "budget_mib": ..., "need_mib": ...}. NULL: the
-- task holds whole GPUs (or none). Local placement reads it back to count a GPU's shares.
ALTER TABLE tasks ADD COLUMN gpu_share jsonb;
