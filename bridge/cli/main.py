"""Entry point of the ``heteroflow`` console script."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from bridge.cli.client import ApiClient, ApiError
from bridge.cli.commands import add_client_commands

DEFAULT_ADDRESS = "http://127.0.0.1:3333"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="heteroflow", description="LLM inference services on Nomad + Consul GPU clusters")
    parser.add_argument("-address", "--address", default=None,
                        help=f"bridge address (HETEROFLOW_ADDR, default {DEFAULT_ADDRESS})")
    parser.add_argument("-token", "--token", default=None,
                        help="bearer token (HETEROFLOW_TOKEN, or HETEROFLOW_HOME/admin-token)")
    parser.add_argument("-json", "--json", action="store_true", help="print JSON")
    sub = parser.add_subparsers(dest="command", required=True)

    for name, text in (("up", "run everything on this machine: embedded PostgreSQL, REST "
                               "API and OpenAI gateway on one port, a node agent"),
                       ("server", "run the REST API against HETEROFLOW_DATABASE_URL")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--host", default=None, help="listen address (default 127.0.0.1)")
        p.add_argument("--port", type=int, default=None, help="listen port (default 3333)")
        p.add_argument("--home", default=None, help="data folder (HETEROFLOW_HOME)")
        p.add_argument("--workers", type=int, default=None)
        if name == "up":
            p.add_argument("--demo", action="store_true",
                           help="also deploy the small SmolLM2 model as the service 'demo'")
    p = sub.add_parser("gateway", help="run the OpenAI gateway alone (several may run)")
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--workers", type=int, default=None)
    p = sub.add_parser("agent", help="run the node agent (GPU detection, models, engines)")
    p.add_argument("--listen", default=None, help="host:port of the agent's API")
    add_client_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("up", "server"):
        return _serve(args)
    if args.command == "gateway":
        return _gateway(args)
    if args.command == "agent":
        return _agent(args)
    api = _client(args)
    try:
        args.func(api, args)
    except ApiError as exc:
        print(f"Error: {exc.message} ({exc.code})", file=sys.stderr)
        for field in exc.details.get("fields", []):
            print(f"  {field['field']}: {field['message']}", file=sys.stderr)
        return 1
    return 0


def _serve(args: argparse.Namespace) -> int:
    from bridge.cli.serve import run_server
    from bridge.settings import BridgeSettings

    overrides: dict[str, Any] = {k: v for k, v in (("host", args.host), ("port", args.port),
                                                   ("home", args.home),
                                                   ("workers", args.workers)) if v is not None}
    settings = BridgeSettings(**overrides)
    return run_server(settings, embedded_allowed=args.command == "up",
                      demo=bool(getattr(args, "demo", False)))


def _gateway(args: argparse.Namespace) -> int:
    from gateway.serve import run_gateway
    from gateway.settings import GatewaySettings

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port),
                                   ("workers", args.workers)) if v is not None}
    return run_gateway(GatewaySettings(**overrides))


def _agent(args: argparse.Namespace) -> int:
    from agent_plugin.logs import configure_logging
    from agent_plugin.serve import run_agent
    from agent_plugin.settings import AgentSettings

    overrides = {"agent_listen": args.listen} if args.listen else {}
    settings = AgentSettings(**overrides)
    configure_logging(settings.log_level, settings.log_format)  # the agent job's only output
    return run_agent(settings)


def _client(args: argparse.Namespace) -> ApiClient:
    from bridge.settings import ClientSettings

    settings = ClientSettings()
    token = args.token or settings.resolved_token()
    return ApiClient(args.address or settings.addr, token)


if __name__ == "__main__":
    raise SystemExit(main())
