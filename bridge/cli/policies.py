"""``heteroflow service policy ...`` and ``heteroflow service window ...``: autoscaling and
schedule windows of a service (PUT .../scale-policy, .../schedule-window)."""

from __future__ import annotations

import argparse
from typing import Any

from bridge.cli.client import ApiClient, print_json

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
METRICS = ("concurrent_requests", "request_queue", "gpu_utilization", "cpu",
           "vllm_pending_requests", "vllm_running_requests")


def add_policy_commands(svc_sub: Any) -> None:
    p = svc_sub.add_parser("policy", help="autoscaling: heteroflow service policy ID "
                                          "-metric concurrent_requests -target 4 -max 3")
    p.add_argument("id")
    p.add_argument("-off", "--off", action="store_true", help="turn autoscaling off")
    p.add_argument("-metric", "--metric", choices=METRICS)
    p.add_argument("-target", "--target", type=float, help="target value per replica")
    p.add_argument("-min", "--min", type=int, default=1, dest="min_replicas")
    p.add_argument("-max", "--max", type=int, default=0, dest="max_replicas",
                   help="0: no upper limit")
    p.add_argument("-cooldown", "--cooldown", type=int, default=60, help="seconds, >= 30")
    p.add_argument("-up-delay", "--up-delay", type=int, dest="up_delay",
                   help="seconds high before +1 (default: the cooldown)")
    p.add_argument("-down-delay", "--down-delay", type=int, dest="down_delay",
                   help="seconds low before -1 (default 300)")
    p.set_defaults(func=service_policy)

    p = svc_sub.add_parser("window", help="schedule windows: heteroflow service window ID "
                                          "-days mon-fri -start 08:00 -end 18:00 "
                                          "-tz Europe/Berlin")
    p.add_argument("id")
    p.add_argument("-clear", "--clear", action="store_true", help="always on again")
    p.add_argument("-days", "--days", default="mon-sun", help="mon-fri, or mon,wed,fri")
    p.add_argument("-start", "--start", help="HH:MM")
    p.add_argument("-end", "--end", help="HH:MM (at or before start: into the next day)")
    p.add_argument("-cron", "--cron", help="5-field cron start, with -duration")
    p.add_argument("-duration", "--duration", type=int, help="minutes, with -cron")
    p.add_argument("-tz", "--tz", default="UTC", help="IANA time zone")
    p.add_argument("-outside", "--outside", default="sleep",
                   help="'sleep' or a replica count outside the window")
    p.set_defaults(func=service_window)


def service_policy(api: ApiClient, args: argparse.Namespace) -> None:
    body: dict[str, Any] = {"auto_scale": not args.off, "min_replicas": args.min_replicas,
                            "max_replicas": args.max_replicas,
                            "cooldown_seconds": args.cooldown}
    if args.metric is not None:
        body["metric"] = args.metric
    if args.target is not None:
        body["target_value"] = args.target
    if args.up_delay is not None:
        body["up_delay_seconds"] = args.up_delay
    if args.down_delay is not None:
        body["down_delay_seconds"] = args.down_delay
    out = api.call("PUT", f"/task-groups/{args.id}/scale-policy", body=body)
    if args.json:
        return print_json(out)
    policy = out["scale_policy"] or {}
    state = "on" if out["auto_scale"] else "off"
    print(f"{out['name']}: autoscaling {state}, {out['min_replicas']}-"
          f"{out['max_replicas'] or 'unlimited'} replicas, {policy.get('metric', '-')} "
          f"target {policy.get('target_value', '-')}; `heteroflow service status "
          f"{out['id']}` explains each move")


def service_window(api: ApiClient, args: argparse.Namespace) -> None:
    body: dict[str, Any] = {"windows": []}
    if not args.clear:
        window: dict[str, Any] = {"timezone": args.tz}
        if args.cron:
            window.update(cron=args.cron, duration_minutes=args.duration)
        else:
            window.update(days=expand_days(args.days), start=args.start, end=args.end)
        body["windows"] = [window]
        if args.outside != "sleep":
            body.update(outside="replicas", outside_replicas=int(args.outside))
    out = api.call("PUT", f"/task-groups/{args.id}/schedule-window", body=body)
    if args.json:
        return print_json(out)
    print(f"{out['name']}: " + ("always on" if out["schedule_window"] is None else
                                f"windows {out['schedule_window']['windows']}"))


def expand_days(text: str) -> list[str]:
    """``mon-fri`` -> mon..fri; ``mon,wed`` as given; ``fri-mon`` wraps over the weekend."""
    days: list[str] = []
    for part in text.lower().split(","):
        if "-" in part:
            first, last = (WEEKDAYS.index(d.strip()[:3]) for d in part.split("-", 1))
            span = (last - first) % 7
            days += [WEEKDAYS[(first + i) % 7] for i in range(span + 1)]
        elif part.strip():
            days.append(part.strip()[:3])
    return list(dict.fromkeys(days))


def policy_lines(g: dict[str, Any]) -> list[tuple[str, Any]]:
    """The status lines of `service status`: policy, window, last decisions."""
    policy = g.get("scale_policy") or {}
    lines: list[tuple[str, Any]] = [(
        "Autoscaling", (f"on, {policy.get('metric')} target {policy.get('target_value')}, "
                        f"{g['min_replicas']}-{g['max_replicas'] or 'unlimited'} replicas")
        if g["auto_scale"] else "off")]
    state = g.get("policy") or {}
    if state.get("decision"):
        lines.append(("Decision", f"{state['decision']} ({state.get('decided_at')})"))
    if g.get("schedule_window"):
        lines.append(("Window", state.get("window_note") or "not evaluated yet"))
        lines.append(("Next change", state.get("next_transition")))
    if g.get("idle_timeout_minutes"):
        lines.append(("Idle sleep", state.get("idle_note") or
                      f"after {g['idle_timeout_minutes']} min without requests"))
    return lines
