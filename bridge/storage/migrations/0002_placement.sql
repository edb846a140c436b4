-- Where a task runs, as placement (Nomad or the local executor) reports it back.
-- address: host:port of the engine's HTTP port, the backend the gateway sends traffic to.
ALTER TABLE tasks
    ADD COLUMN address    text,
    ADD COLUMN alloc_id   text UNIQUE,
    ADD COLUMN node_name  text;
CREATE INDEX tasks_group_status_idx ON tasks (group_id, status);

-- The Nomad job a group became, and the JobModifyIndex it was last registered at
-- (check-and-set on every later register).
ALTER TABLE task_groups
    ADD COLUMN nomad_job_id      text UNIQUE,
    ADD COLUMN job_modify_index  bigint;
