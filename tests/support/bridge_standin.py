"""A stand-in for the bridge's wake endpoint, until the sleep/wake issue lands.

``POST /api/v1/tasks/{id}/wake`` (bearer token required) does what the bridge will: call the
engine's ``/wake_up`` at the task's address, then mark the task row ``running``. Test
control: ``POST /_control {"mode": "wake" | "ignore" | "fail"}``, ``GET /_calls``.

    python -m tests.support.bridge_standin --port P --db URL --token T
"""

from __future__ import annotations

import argparse

import aiohttp
import psycopg
from aiohttp import web


class StandIn:
    def __init__(self, db_url: str, token: str) -> None:
        self.db_url = db_url
        self.token = token
        self.mode = "wake"
        self.calls: list[str] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes([web.post("/api/v1/tasks/{task_id}/wake", self.wake),
                        web.post("/_control", self.control), web.get("/_calls", self.list)])
        return app

    async def wake(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error": {"code": "unauthorized"}}, status=401)
        task_id = request.match_info["task_id"]
        self.calls.append(task_id)
        if self.mode == "fail":
            return web.json_response({"error": {"code": "internal"}}, status=500)
        if self.mode == "ignore":
            return web.json_response({"status": "waking"}, status=202)
        async with await psycopg.AsyncConnection.connect(self.db_url, autocommit=True) as conn:
            cur = await conn.execute("SELECT address FROM tasks WHERE id = %s", (task_id,))
            row = await cur.fetchone()
            if row is None:
                return web.json_response({"error": {"code": "not_found"}}, status=404)
            await conn.execute("UPDATE tasks SET status = 'waking' WHERE id = %s", (task_id,))
            async with aiohttp.ClientSession() as http, \
                    http.post(f"http://{row[0]}/wake_up") as resp:
                resp.raise_for_status()
            await conn.execute("UPDATE tasks SET status = 'running' WHERE id = %s", (task_id,))
        return web.json_response({"status": "running"})

    async def control(self, request: web.Request) -> web.Response:
        self.mode = (await request.json())["mode"]
        return web.json_response({"ok": True})

    async def list(self, _: web.Request) -> web.Response:
        return web.json_response(self.calls)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--token", required=True)
    args = parser.parse_args()
    web.run_app(StandIn(args.db, args.token).app(), host="127.0.0.1", port=args.port,
                print=None, access_log=None)


if __name__ == "__main__":
    main()
