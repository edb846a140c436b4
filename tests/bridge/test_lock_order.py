"""Scale-down and a task's status change take their locks in one order (group, then tasks),
so they wait for each other instead of deadlocking (issue: DeadlockDetected on scale-down,
reported as "the database cannot be reached")."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest

from bridge.domain.status import TaskStatus as T
from bridge.errors import InvalidState
from bridge.services.context import Actor
from bridge.services.task_ops import move_task
from bridge.storage import task_groups as group_rows
from bridge.storage.db import Database
from tests.support.bridge_helpers import seed_example


async def test_a_status_change_waits_for_a_scale_down_instead_of_deadlocking(
        admin: Any, bridge: Any) -> None:
    g = (await admin.post("/task-groups", json=seed_example())).json()
    bridge.sql("UPDATE tasks SET status = 'running' WHERE group_id = %s", (g["id"],))
    victim = g["tasks"][0]["id"]
    db = Database(bridge.db_url)
    await db.open()
    scaler = await psycopg.AsyncConnection.connect(bridge.db_url)
    try:
        # As scale_group's last transaction: the group's row first, then delete tasks.
        await scaler.execute("SELECT 1 FROM task_groups WHERE id = %s FOR UPDATE", (g["id"],))

        async def report() -> None:
            async with db.transaction() as conn:
                task = await group_rows.get_task(conn, victim)
                assert task is not None
                await move_task(conn, task, T.FAILED, "engine exited", Actor(None),
                                "task.failed")

        reporting = asyncio.create_task(report())
        await asyncio.sleep(0.5)  # the report is now inside its transaction
        await scaler.execute("DELETE FROM tasks WHERE group_id = %s AND rank >= 0",
                             (g["id"],))
        await scaler.commit()
        # The report waited for the scale-down and finds its task gone: a clear "look
        # again", not a deadlock (nor a 503 about the database).
        with pytest.raises(InvalidState, match="changed meanwhile"):
            await asyncio.wait_for(reporting, timeout=60)
    finally:
        await scaler.close()
        await db.close()
