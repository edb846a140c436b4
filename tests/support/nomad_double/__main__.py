"""Run the Nomad API double standalone:
`python -m tests.support.nomad_double --port 4646 --fleet mixed`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from .fleet import gpu_fleet, mixed_fleet, write_fixtures
from .runners import AutoRunner, ManualRunner
from .server import NomadDouble

log = logging.getLogger("tests.support.nomad_double")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4646)
    parser.add_argument("--fleet", choices=("mixed", "gpu", "none"), default="mixed")
    parser.add_argument("--nodes", type=int, default=200, help="node count for --fleet gpu")
    parser.add_argument("--runner", choices=("auto", "manual"), default="auto")
    parser.add_argument("--acl-token", default=None)
    parser.add_argument("--heartbeat-seconds", type=float, default=30.0)
    parser.add_argument("--write-fixtures", action="store_true",
                        help="rewrite tests/fixtures/nomad/nodes/*.json and exit")
    args = parser.parse_args()
    if args.write_fixtures:
        write_fixtures()
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    nodes = []
    if args.fleet == "mixed":
        nodes = mixed_fleet()
    elif args.fleet == "gpu":
        nodes = gpu_fleet(args.nodes)
    asyncio.run(_serve(NomadDouble(
        nodes=nodes, runner=AutoRunner() if args.runner == "auto"
        else ManualRunner(), acl_token=args.acl_token, heartbeat_seconds=args.heartbeat_seconds,
        host=args.host, port=args.port)))


async def _serve(double: NomadDouble) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with double:
        print(f"Nomad API double listening on {double.address}", flush=True)
        await stop.wait()
    log.info("nomad double stopped", extra={"address": double.address})


if __name__ == "__main__":
    main()
