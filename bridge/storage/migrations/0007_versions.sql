-- Versions of a service and the rollout between them (issue 11). 0006 belongs to the
-- policies work (autoscaling); this file touches none of its columns.
--
-- A group's `version` is the one it is rolling to (or runs); each task records the
-- version it was started with, so progress is "tasks on the group's version".
-- `rollout` is the rollout in progress or the last one (strategy, replicas, the version it
-- came from, its reason), kept as JSON: only the bridge reads it.
ALTER TABLE task_groups
    ADD COLUMN version      integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    ADD COLUMN engine_args  jsonb NOT NULL DEFAULT '[]'::jsonb,
    ADD COLUMN env          jsonb NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN rollout      jsonb;
ALTER TABLE tasks
    ADD COLUMN version integer NOT NULL DEFAULT 1 CHECK (version >= 1);

-- Every version ever asked for, never rewritten: what it runs, what changed from the one
-- before it, and how it was to be rolled out.
CREATE TABLE task_group_versions (
    group_id    text NOT NULL REFERENCES task_groups (id) ON DELETE CASCADE,
    version     integer NOT NULL CHECK (version >= 1),
    spec        jsonb NOT NULL,
    changes     jsonb NOT NULL DEFAULT '{}'::jsonb,
    strategy    text NOT NULL CHECK (strategy IN ('initial', 'rolling', 'recreate', 'revert')),
    note        text NOT NULL DEFAULT '',
    created_by  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, version)
);

-- Services created before versions existed get their version 1 as they are now.
INSERT INTO task_group_versions (group_id, version, spec, strategy, created_by, created_at)
SELECT id, 1, jsonb_build_object('image', image, 'command', command, 'engine_args', '[]'::jsonb,
       'model_path', model_path, 'env', '{}'::jsonb, 'health_check', health_check),
       'initial', created_by, created_at
FROM task_groups;
