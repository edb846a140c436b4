"""Benchmark of the gateway against its practical limit (nginx) and its upstream alone."""
