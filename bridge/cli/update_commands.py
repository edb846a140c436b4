"""`heteroflow service update | versions | revert | start` (issue 11)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from bridge.cli.client import ApiClient, print_json, print_table


def add_update_commands(svc_sub: Any) -> None:
    p = svc_sub.add_parser("update", help="roll out a new version (image, command, engine "
                           "args, model path, env); a version failing its health check rolls "
                           "back by itself")
    p.add_argument("id")
    p.add_argument("-image", "--image")
    p.add_argument("-command", "--command")
    p.add_argument("-model-path", "--model-path", dest="model_path")
    p.add_argument("-arg", "--arg", action="append", dest="engine_args", metavar="ARG",
                   help="an engine argument (repeat for each, --arg=--n_ctx --arg=2048; "
                   "replaces the version's list)")
    p.add_argument("-env", "--env", action="append", metavar="NAME=VALUE",
                   help="an environment variable (repeat; replaces the version's env)")
    p.add_argument("-strategy", "--strategy", choices=("rolling", "recreate"),
                   default="rolling")
    p.add_argument("-max-parallel", "--max-parallel", type=int, default=1, dest="max_parallel")
    p.add_argument("-healthy-deadline", "--healthy-deadline", type=int, default=600,
                   dest="healthy_deadline", help="seconds a new replica has to become healthy")
    p.add_argument("-canary", "--canary", type=int, default=0,
                   help="start this many new replicas first; then promote or abandon")
    p.add_argument("-canary-percent", "--canary-percent", type=int, default=10,
                   dest="canary_percent", help="the canaries' share of traffic")
    p.add_argument("-wait", "--wait", action="store_true",
                   help="follow the rollout until it completes or rolls back")
    p.set_defaults(func=service_update)
    p = svc_sub.add_parser("promote", help="the canaries held: replace the other replicas")
    p.add_argument("id")
    p.set_defaults(func=service_promote)
    p = svc_sub.add_parser("versions", help="every version of a service and what changed")
    p.add_argument("id")
    p.set_defaults(func=service_versions)
    p = svc_sub.add_parser("revert", help="go back to an earlier version (as a new one)")
    p.add_argument("id")
    p.add_argument("version", type=int)
    p.add_argument("-wait", "--wait", action="store_true")
    p.set_defaults(func=service_revert)
    p = svc_sub.add_parser("abandon", help="fail the rollout in progress: back to the "
                           "version it came from")
    p.add_argument("id")
    p.set_defaults(func=service_abandon)
    p = svc_sub.add_parser("start", help="start a stopped service again")
    p.add_argument("id")
    p.set_defaults(func=service_start)


def service_update(api: ApiClient, args: argparse.Namespace) -> None:
    body: dict[str, Any] = {"strategy": args.strategy, "max_parallel": args.max_parallel,
                            "healthy_deadline_seconds": args.healthy_deadline,
                            "canary": args.canary, "canary_percent": args.canary_percent}
    for field in ("image", "command", "model_path", "engine_args"):
        if getattr(args, field) is not None:
            body[field] = getattr(args, field)
    if args.env is not None:
        body["env"] = dict(pair.split("=", 1) for pair in args.env)
    out = api.call("PUT", f"/task-groups/{args.id}/update", body=body)
    if args.canary:
        args.wait = False  # the rollout waits for `service promote` or `service abandon`
    _report(api, args, out)


def service_revert(api: ApiClient, args: argparse.Namespace) -> None:
    out = api.call("POST", f"/task-groups/{args.id}/versions/{args.version}/revert")
    _report(api, args, out)


def service_promote(api: ApiClient, args: argparse.Namespace) -> None:
    out = api.call("POST", f"/task-groups/{args.id}/rollout/promote")
    args.wait = False
    _report(api, args, out)


def service_abandon(api: ApiClient, args: argparse.Namespace) -> None:
    out = api.call("POST", f"/task-groups/{args.id}/rollout/fail")
    args.wait = False
    _report(api, args, out)


def service_start(api: ApiClient, args: argparse.Namespace) -> None:
    out = api.call("POST", f"/task-groups/{args.id}/start")
    print_json(out) if args.json else print(f"{out['name']}: {out['status']} "
                                            f"({out['status_reason']})")


def service_versions(api: ApiClient, args: argparse.Namespace) -> None:
    out = api.call("GET", f"/task-groups/{args.id}/versions")
    if args.json:
        return print_json(out)
    print_table([("*" if v["version"] == out["current"] else "", v["version"], v["strategy"],
                  v["created_at"], v["note"] or _changes(v["changes"]))
                 for v in out["items"]], ("", "Version", "How", "Created", "Changed"))


def rollout_line(g: dict[str, Any]) -> str:
    """ "rolling: 2 of 4 replicas on version 3 (why)" for status and update."""
    progress = g.get("update_progress") or f"version {g.get('version', 1)}"
    why = (g.get("rollout") or {}).get("reason")
    return f"{g['rolling_update_state']}: {progress}" + (f" ({why})" if why else "")


def _report(api: ApiClient, args: argparse.Namespace, out: dict[str, Any]) -> None:
    if args.json and not args.wait:
        return print_json(out)
    print(f"{out['name']}: {rollout_line(out)}")
    last = ""
    while args.wait and not (out.get("rollout") or {}).get("done", True):
        time.sleep(2)
        out = api.call("GET", f"/task-groups/{args.id}")
        line = rollout_line(out)
        if line != last:
            print(line)
            last = line
    if args.wait and args.json:
        print_json(out)


def _changes(changes: dict[str, Any]) -> str:
    return ", ".join(f"{k}: {v['from']!r} -> {v['to']!r}" for k, v in changes.items())[:100]
