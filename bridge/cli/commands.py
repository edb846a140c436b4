"""Client subcommands: service, route, key, audit, whoami."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bridge.cli.client import ApiClient, print_json, print_kv, print_table


def add_client_commands(sub: Any) -> None:
    svc = sub.add_parser("service", help="inference services (task groups)")
    svc_sub = svc.add_subparsers(dest="action", required=True)
    p = svc_sub.add_parser("create", help="create a service from a JSON file or flags")
    p.add_argument("-f", "--file", help="JSON body of POST /api/v1/task-groups ('-' = stdin)")
    p.add_argument("-name", "--name")
    p.add_argument("-image", "--image")
    p.add_argument("-model-path", "--model-path", dest="model_path")
    p.add_argument("-engine", "--engine")
    p.add_argument("-gpus", "--gpus", type=int, dest="gpu_required")
    p.set_defaults(func=service_create)
    p = svc_sub.add_parser("list", help="list services")
    p.add_argument("-status", "--status")
    p.set_defaults(func=service_list)
    p = svc_sub.add_parser("status", help="one service with its tasks")
    p.add_argument("id")
    p.set_defaults(func=service_status)
    p = svc_sub.add_parser("delete", help="delete a service and all it owns")
    p.add_argument("id")
    p.set_defaults(func=service_delete)
    p = svc_sub.add_parser("scale", help="change the number of replicas")
    p.add_argument("id")
    p.add_argument("replicas", type=int)
    p.set_defaults(func=service_scale)
    p = svc_sub.add_parser("jobspec", help="the Nomad job a service renders to")
    p.add_argument("id")
    p.set_defaults(func=service_jobspec)
    for verb, text in (("sleep", "put a task to sleep"), ("wake", "wake a sleeping task"),
                       ("stop", "stop a task's engine"), ("retry", "place a failed task again")):
        p = svc_sub.add_parser(verb, help=f"{text} (a task id, or a service id for all its "
                                          "tasks)")
        p.add_argument("id")
        p.set_defaults(func=task_verb, verb=verb)

    p = sub.add_parser("nodes", help="nodes as their agents report them")
    p.set_defaults(func=nodes_list)
    p = sub.add_parser("models", help="models the agents found")
    p.add_argument("-node", "--node", dest="node_id")
    p.set_defaults(func=models_list)

    route = sub.add_parser("route", help="model routes (canary weights, priorities)")
    route_sub = route.add_subparsers(dest="action", required=True)
    p = route_sub.add_parser("list")
    p.add_argument("-model", "--model")
    p.set_defaults(func=route_list)
    p = route_sub.add_parser("create", help="a version of a local service, or an external "
                             "OpenAI-compatible upstream (-upstream-url, key from stdin)")
    p.add_argument("-model", "--model", required=True)
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("-group", "--group", help="task group id")
    target.add_argument("-upstream-url", "--upstream-url", dest="upstream_url",
                        help="base URL of an OpenAI-compatible provider, e.g. https://x/v1")
    p.add_argument("-upstream-model", "--upstream-model", dest="upstream_model")
    p.add_argument("-upstream-key-stdin", "--upstream-key-stdin", dest="key_stdin",
                   action="store_true", help="read the provider's API key from stdin")
    p.add_argument("-weight", "--weight", type=int, default=100)
    p.add_argument("-priority", "--priority", type=int, default=0)
    p.add_argument("-first-byte-timeout", "--first-byte-timeout", dest="first_byte_timeout",
                   type=float, help="seconds the gateway waits for an upstream's first byte")
    p.add_argument("-version", "--version", default="v1")
    p.add_argument("-algorithm", "--algorithm")
    p.set_defaults(func=route_create)
    p = route_sub.add_parser("update")
    p.add_argument("id")
    p.add_argument("-weight", "--weight", type=int)
    p.add_argument("-priority", "--priority", type=int)
    p.add_argument("-version", "--version")
    p.add_argument("-algorithm", "--algorithm")
    p.add_argument("-status", "--status", choices=["active", "inactive"])
    p.set_defaults(func=route_update)
    p = route_sub.add_parser("delete")
    p.add_argument("id")
    p.set_defaults(func=route_delete)

    key = sub.add_parser("key", help="gateway API keys of an endpoint")
    key_sub = key.add_subparsers(dest="action", required=True)
    for name, func in (("list", key_list), ("create", key_create)):
        p = key_sub.add_parser(name)
        p.add_argument("endpoint", help="endpoint id (ep-...)")
        if name == "create":
            p.add_argument("-name", "--name", default="default")
        p.set_defaults(func=func)
    p = key_sub.add_parser("revoke")
    p.add_argument("endpoint")
    p.add_argument("key_id")
    p.set_defaults(func=key_revoke)

    p = sub.add_parser("audit", help="the audit trail")
    p.add_argument("-object", "--object", dest="object_id")
    p.add_argument("-limit", "--limit", type=int, default=50)
    p.set_defaults(func=audit_list)
    p = sub.add_parser("whoami", help="who the token belongs to")
    p.set_defaults(func=whoami)


def service_create(api: ApiClient, args: argparse.Namespace) -> None:
    body: dict[str, Any] = {}
    if args.file:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
        body = json.loads(text)
    for field in ("name", "image", "model_path", "engine", "gpu_required"):
        value = getattr(args, field)
        if value is not None:
            body[field] = value
    out = api.call("POST", "/task-groups", body=body)
    if args.json:
        return print_json(out)
    print_kv([("ID", out["id"]), ("Name", out["name"]), ("Status", out["status"]),
              ("Tasks", len(out["tasks"])), ("Endpoint", out["endpoint"]),
              ("API key", (out.get("api_key") or {}).get("key")),
              ("", "the API key is shown this once; store it now")])


def service_list(api: ApiClient, args: argparse.Namespace) -> None:
    out = api.call("GET", "/task-groups", params={"status": args.status} if args.status else None)
    if args.json:
        return print_json(out)
    print_table([(g["id"], g["name"], g["status"], g["model_name"], g["parallelism"],
                  f"{g['current_replicas']}/{len(g['tasks'])}", g["status_reason"][:60])
                 for g in out["items"]],
                ("ID", "Name", "Status", "Model", "Mode", "Running", "Why"))


def service_status(api: ApiClient, args: argparse.Namespace) -> None:
    g = api.call("GET", f"/task-groups/{args.id}")
    if args.json:
        return print_json(g)
    print_kv([("ID", g["id"]), ("Name", g["name"]), ("Status", g["status"]),
              ("Why", g["status_reason"]), ("Image", g["image"]), ("Engine", g["engine"]),
              ("Model", f"{g['model_name']} ({g['model_path']})"),
              ("Mode", f"{g['parallelism']} world_size={g['world_size']} "
                       f"nodes={g['node_count']}"),
              ("Endpoint", g["endpoint"])])
    print("\nTasks")
    print_table([(t["id"], t["rank"], t["status"], t["node_name"] or t["node_id"],
                  t["gpu_id"] or f"{t['gpu_required']} wanted", t["address"],
                  t["status_reason"]) for t in g["tasks"]],
                ("ID", "Rank", "Status", "Node", "GPUs", "Address", "Why"))


def service_delete(api: ApiClient, args: argparse.Namespace) -> None:
    out = api.call("DELETE", f"/task-groups/{args.id}")
    print_json(out) if args.json else print(f"deleted {out['name']} ({out['id']})")


def route_list(api: ApiClient, args: argparse.Namespace) -> None:
    params = {"model_name": args.model} if args.model else None
    out = api.call("GET", "/model-routes", params=params)
    if args.json:
        return print_json(out)
    print_table([(r["id"], r["model_name"], r["version"], r["priority"], r["weight"],
                  r["algorithm"] or "", r["status"], r["task_group_id"] or r["upstream_url"])
                 for r in out],
                ("ID", "Model", "Version", "Priority", "Weight", "Algorithm", "Status",
                 "Target"))


def route_create(api: ApiClient, args: argparse.Namespace) -> None:
    body: dict[str, Any] = {"model_name": args.model, "weight": args.weight,
                            "priority": args.priority, "version": args.version}
    if args.group:
        body["task_group_id"] = args.group
    else:
        body["upstream_url"] = args.upstream_url
        if args.upstream_model:
            body["upstream_model"] = args.upstream_model
        if args.key_stdin:
            # from stdin, so the key never shows in the shell history or process list
            body["upstream_key"] = sys.stdin.readline().strip()
    if args.algorithm:
        body["algorithm"] = args.algorithm
    if args.first_byte_timeout:
        body["first_byte_timeout_s"] = args.first_byte_timeout
    out = api.call("POST", "/model-routes", body=body)
    print_json(out) if args.json else print(f"created route {out['id']}")


def route_update(api: ApiClient, args: argparse.Namespace) -> None:
    body = {k: getattr(args, k) for k in ("weight", "priority", "version", "algorithm", "status")
            if getattr(args, k) is not None}
    out = api.call("PUT", f"/model-routes/{args.id}", body=body)
    print_json(out) if args.json else print(
        f"route {out['id']}: weight={out['weight']} priority={out['priority']} "
        f"version={out['version']} status={out['status']}")


def route_delete(api: ApiClient, args: argparse.Namespace) -> None:
    out = api.call("DELETE", f"/model-routes/{args.id}")
    print_json(out) if args.json else print(f"deleted route {out['id']}")


def key_list(api: ApiClient, args: argparse.Namespace) -> None:
    out = api.call("GET", f"/endpoints/{args.endpoint}/api-keys")
    if args.json:
        return print_json(out)
    print_table([(k["id"], k["name"], k["prefix"] + "...", "active" if k["active"] else "revoked",
                  k["created_at"]) for k in out], ("ID", "Name", "Prefix", "State", "Created"))


def key_create(api: ApiClient, args: argparse.Namespace) -> None:
    out = api.call("POST", f"/endpoints/{args.endpoint}/api-keys", body={"name": args.name})
    if args.json:
        return print_json(out)
    print_kv([("ID", out["id"]), ("Key", out["key"]), ("", "shown this once; store it now")])


def key_revoke(api: ApiClient, args: argparse.Namespace) -> None:
    out = api.call("DELETE", f"/endpoints/{args.endpoint}/api-keys/{args.key_id}")
    print_json(out) if args.json else print(f"revoked {out['id']} ({out['prefix']}...)")


def audit_list(api: ApiClient, args: argparse.Namespace) -> None:
    params: dict[str, Any] = {"limit": args.limit}
    if args.object_id:
        params["object_id"] = args.object_id
    out = api.call("GET", "/audit", params=params)
    if args.json:
        return print_json(out)
    print_table([(e["at"], e["actor_name"], e["action"], e["object_id"]) for e in out["items"]],
                ("When", "Who", "Action", "Object"))


def whoami(api: ApiClient, args: argparse.Namespace) -> None:
    out = api.call("GET", "/whoami")
    print_json(out) if args.json else print(f"{out['name']} ({out['role']})")


def service_scale(api: ApiClient, args: argparse.Namespace) -> None:
    out = api.call("PUT", f"/task-groups/{args.id}/scale", body={"replicas": args.replicas})
    print_json(out) if args.json else print(f"{out['name']}: {len(out['tasks'])} replicas")


def service_jobspec(api: ApiClient, args: argparse.Namespace) -> None:
    print(api.text("GET", f"/task-groups/{args.id}/jobspec"), end="")


def task_verb(api: ApiClient, args: argparse.Namespace) -> None:
    task_ids = [args.id]
    if args.id.startswith("tg-"):
        task_ids = [t["id"] for t in api.call("GET", f"/task-groups/{args.id}")["tasks"]]
    results = []
    for task_id in task_ids:
        if args.verb == "retry":
            out = api.call("POST", f"/tasks/{task_id}", params={"action": "retry"})
        else:
            out = api.call("POST", f"/tasks/{task_id}/{args.verb}")
        results.append(out)
    if args.json:
        return print_json(results)
    for t in results:
        print(f"{t['id']}: {t['status']} ({t['status_reason']})")


def nodes_list(api: ApiClient, args: argparse.Namespace) -> None:
    out = api.call("GET", "/nodes")
    if args.json:
        return print_json(out)
    print_table([(n["id"], n["name"], n["status"], len(n["gpus"]),
                  ",".join(sorted({g["vendor"] for g in n["gpus"]})) or "-",
                  ",".join(n["engines"]), n["model_count"], n["last_heartbeat"])
                 for n in out],
                ("ID", "Name", "Status", "GPUs", "Vendors", "Engines", "Models", "Last seen"))


def models_list(api: ApiClient, args: argparse.Namespace) -> None:
    out = api.call("GET", "/models", params={"node_id": args.node_id} if args.node_id else None)
    if args.json:
        return print_json(out)
    print_table([(m["node_name"], m["name"], m["format"], m["quantization"] or "",
                  m["parameter_count"] or "", m["estimated_vram_mb"] or "", m["path"])
                 for m in out],
                ("Node", "Model", "Format", "Quant", "Params", "VRAM MiB", "Path"))
