"""Placement without Nomad: first fit on the GPUs the nodes' agents report.

    placement.py  the port for the services (LocalPlacement) and its two loops
    decide.py     decide() and decide_agents(), pure;  fit.py  fit_gpus(), pure
    apply.py      load rows, nodes and what agents run; apply decisions (rows, agent calls)
"""
