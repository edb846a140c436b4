"""A Nomad HTTP API double for tests: a real aiohttp server with a scheduler inside.

    from tests.support.nomad_double import NomadDouble, AutoRunner, mixed_fleet
    async with NomadDouble(nodes=mixed_fleet(), runner=AutoRunner()) as double:
        ...  # talk to double.address like to a Nomad agent

Modules: server (lifecycle, test hooks), routes_* (endpoints), httpapi (errors, blocking
queries, ACLs), cluster (server-side operations), scheduler / reconcile / placement /
feasibility / constraints (placement), state + events (store and event stream), client +
runners (allocation lifecycle), hcl / schema / canonical / validate (job specs), fleet (nodes).
"""

from .fleet import gpu_fleet, mixed_fleet
from .runners import AllocReporter, AutoRunner, ManualRunner, ProcessRunner, Runner
from .server import NomadDouble

__all__ = ["AllocReporter", "AutoRunner", "ManualRunner", "NomadDouble", "ProcessRunner",
           "Runner", "gpu_fleet", "mixed_fleet"]
