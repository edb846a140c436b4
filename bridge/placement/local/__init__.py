"""Placement without Nomad: first fit on the GPUs the nodes' agents report."""
