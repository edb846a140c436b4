"""Placement on a Nomad cluster.

    placement.py  the port for the services (NomadPlacement)
    placer.py     engine, vendor, VRAM and mount for a group; registers and purges its job
    job.py        what the placer decided -> the jobspec context bridge.nomad renders
    loop.py       the reconciler: resync, Nomad's event stream, registration workers
    plan.py       decide(), pure;  apply.py  load the rows, apply a Plan

The reconciler keeps task rows true to what Nomad placed: load -> decide (pure) -> apply.

    DB (desired)  ─┐
                   ├─ decide() ─> Plan{task changes, group changes, register, purge} ─> apply
    Nomad (seen)  ─┘

Vocabulary: a *group row* is a TaskGroup as stored; a *job view* is what Nomad says about
the group's job (its allocations and, when something is unplaced, why). decide() never does
I/O, so table tests cover it; apply() writes with guards (expected old status) and skips
rows that changed meanwhile.
"""
