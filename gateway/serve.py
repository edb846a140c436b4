"""``heteroflow gateway``: the gateway standalone, one or more workers, uvloop.

Several replicas (on one or many machines, behind any load balancer) may read the same
database: the gateway keeps no state there except additive usage counters. The database
must have been migrated by the bridge.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import Any

from sanic import Sanic
from sanic.worker.loader import AppLoader

from gateway.app import create_app
from gateway.http_bounds import BoundedHttpProtocol
from gateway.logs import configure_logging
from gateway.settings import GatewaySettings


def run_gateway(settings: GatewaySettings) -> int:
    """Serve until interrupted; returns the process exit code."""
    configure_logging(settings.log_level, settings.log_format)
    if not settings.database_url:
        print("heteroflow gateway needs HETEROFLOW_DATABASE_URL (the bridge's database); "
              "`heteroflow up` serves the gateway with the embedded one", file=sys.stderr)
        return 2
    loader = AppLoader(factory=partial(build_worker_app, settings))
    app = loader.load()
    app.prepare(host=settings.host, port=settings.port, workers=settings.workers,
                backlog=settings.backlog,
                single_process=settings.workers == 1, access_log=settings.access_log,
                motd=False, protocol=BoundedHttpProtocol)
    if settings.workers == 1:
        Sanic.serve_single(primary=app)
    else:
        Sanic.serve(primary=app, app_loader=loader)
    return 0


def build_worker_app(settings: GatewaySettings) -> Sanic[Any, Any]:
    """The app factory each worker process calls (logging is per process, too)."""
    configure_logging(settings.log_level, settings.log_format)
    assert settings.database_url is not None
    return create_app(settings, settings.database_url)
