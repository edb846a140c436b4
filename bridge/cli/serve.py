"""``heteroflow up`` and ``heteroflow server``: run the bridge until interrupted.

``up`` is the one-machine default: embedded PostgreSQL under HETEROFLOW_HOME (unless
HETEROFLOW_DATABASE_URL names another server), migrations, the first admin, then on one port
(127.0.0.1:3333) the REST API and the OpenAI gateway, with a node agent for this machine
running beside them; without NOMAD_ADDR the engines run here as processes. ``--demo``
also deploys the small SmolLM2 model as the service ``demo``.
``server`` is the REST API alone against an external database, for a cluster.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from bridge.app import create_app
from bridge.cli.secret_file import write_secret_file
from bridge.crypto import load_or_create_key
from bridge.domain.models import Role
from bridge.logs import configure_logging
from bridge.services.users import bootstrap_admin, ensure_service_account
from bridge.settings import BridgeSettings
from bridge.storage.db import Database
from bridge.storage.embedded import EmbeddedPostgres
from bridge.storage.migrate import apply_migrations

log = logging.getLogger("bridge.cli")


def run_server(settings: BridgeSettings, *, embedded_allowed: bool, demo: bool = False) -> int:
    configure_logging(settings.log_level, settings.log_format)
    if settings.workers > 1 and not settings.nomad_addr and settings.placement == "auto":
        # Local placement keeps its GPU bookkeeping in one process; several workers would
        # hand the same GPU out twice (and under `up` each would run an agent of its own).
        print("several workers need Nomad placement (NOMAD_ADDR); on one machine run one "
              "worker, or more `heteroflow gateway` processes for the OpenAI traffic",
              file=sys.stderr)
        return 2
    settings.home.mkdir(parents=True, exist_ok=True)
    embedded: EmbeddedPostgres | None = None
    try:
        if settings.database_url:
            url = settings.database_url
        elif embedded_allowed:
            embedded = EmbeddedPostgres(settings.pgdata)
            url = embedded.start()
        else:
            print("heteroflow server needs HETEROFLOW_DATABASE_URL; use `heteroflow up` for "
                  "the embedded database", file=sys.stderr)
            return 2
        one_machine = embedded_allowed
        admin, agent_token, gateway_token = asyncio.run(_prepare_database(url, one_machine))
        if admin is not None:
            write_secret_file(settings.admin_token_file, admin)
        key = load_or_create_key(settings.secret_key, settings.secret_key_file)
        app = create_app(settings, url)
        demo_info: dict[str, Any] = {}
        if one_machine:
            _attach_gateway(app, settings, url, key, gateway_token)
            _attach_agent(app, settings, agent_token)
            if demo:
                from bridge.cli.demo import attach_demo

                attach_demo(app, settings, demo_info)
        _print_banner(settings, admin, one_machine=one_machine, demo=demo_info)
        from gateway.http_bounds import BoundedHttpProtocol  # slow clients: 408 and close

        app.run(host=settings.host, port=settings.port, single_process=settings.workers == 1,
                workers=settings.workers, access_log=True, motd=False,
                protocol=BoundedHttpProtocol)
        return 0
    finally:
        if embedded is not None:
            embedded.stop()
            log.info("embedded postgres stopped")


async def _prepare_database(url: str, one_machine: bool
                            ) -> tuple[str | None, str | None, str | None]:
    await apply_migrations(url)
    db = Database(url, min_size=1, max_size=1)
    await db.open()
    try:
        admin = await bootstrap_admin(db)
        if not one_machine:
            return admin, None, None
        _, agent = await ensure_service_account(db, "local-agent", Role.AGENT)
        _, gateway = await ensure_service_account(db, "local-gateway", Role.GATEWAY)
        return admin, agent, gateway
    finally:
        await db.close()


def _local_address(settings: BridgeSettings) -> str:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://{host}:{settings.port}"


def _attach_gateway(app: Any, settings: BridgeSettings, url: str, key: str,
                    token: str | None) -> None:
    """The OpenAI gateway on the same port as the REST API, as the seed has it."""
    from gateway.app import attach
    from gateway.settings import GatewaySettings

    attach(app, GatewaySettings(home=settings.home, database_url=url, port=settings.port,
                                workers=settings.workers,
                                bridge_url=_local_address(settings), gateway_token=token,
                                secret_key=key, log_level=settings.log_level,
                                log_format=settings.log_format), url)


def _attach_agent(app: Any, settings: BridgeSettings, token: str | None) -> None:
    """This machine's node agent, in the same process: GPUs, models, engines."""
    from agent_plugin.serve import Agent
    from agent_plugin.settings import AgentSettings

    async def start_agent(app: Any) -> None:
        agent_settings = AgentSettings(
            home=settings.home, bridge_url=_local_address(settings), node_token=token,
            agent_listen="127.0.0.1:0", model_roots=settings.local_model_roots,
            log_level=settings.log_level if settings.log_level in (
                "DEBUG", "INFO", "WARNING", "ERROR") else "INFO")
        app.ctx.agent = Agent(agent_settings)
        await app.ctx.agent.start()

    async def stop_agent(app: Any) -> None:
        agent = getattr(app.ctx, "agent", None)
        if agent is not None:
            await agent.stop()  # stops every engine it started

    app.register_listener(start_agent, "after_server_start")
    app.register_listener(stop_agent, "before_server_stop")


def _print_banner(settings: BridgeSettings, token: str | None, *, one_machine: bool,
                  demo: dict[str, Any]) -> None:
    base = _local_address(settings)
    lines = ["", "HeteroFlow is starting",
             f"  REST API      {base}/api/v1   (OpenAPI: {base}/api/v1/openapi.json)"]
    if one_machine:
        lines.append(f"  OpenAI API    {base}/v1")
        placement = ("Nomad at " + settings.nomad_addr) if settings.nomad_addr else "this machine"
        lines.append(f"  placement     {placement}")
    lines.append(f"  data          {settings.home}")
    if token is not None:
        lines += [f"  admin token   {token}",
                  f"                (shown once; also saved to {settings.admin_token_file}, "
                  "mode 0600)"]
    else:
        lines.append(f"  admin token   in {settings.admin_token_file}")
    lines += ["", f"  export HETEROFLOW_TOKEN=$(cat {settings.admin_token_file})",
              f"  heteroflow -address {base} service list", ""]
    if demo:
        lines += [
            f"  demo service  '{demo['name']}' (SmolLM2-135M on the CPU), API key in "
            f"{demo['key_file']}", "", "  try it with the OpenAI SDK:", "",
            "    from openai import OpenAI",
            f"    client = OpenAI(base_url=\"{base}/v1\",",
            f"                    api_key=open(\"{demo['key_file']}\").read().strip())",
            f"    reply = client.chat.completions.create(model=\"{demo['name']}\",",
            "        messages=[{\"role\": \"user\", \"content\": \"Say hello.\"}])",
            "    print(reply.choices[0].message.content)", ""]
    print("\n".join(lines), file=sys.stdout, flush=True)
