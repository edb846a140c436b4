"""Keeps task rows true to what Nomad placed: load -> decide (pure) -> apply.

    DB (desired)  ─┐
                   ├─ decide() ─> Plan{task changes, group changes, register, purge} ─> apply
    Nomad (seen)  ─┘

Vocabulary: a *group row* is a TaskGroup as stored; a *job view* is what Nomad says about
the group's job (its allocations and, when something is unplaced, why). decide() never does
I/O, so table tests cover it; apply() writes with guards (expected old status) and skips
rows that changed meanwhile.
"""
