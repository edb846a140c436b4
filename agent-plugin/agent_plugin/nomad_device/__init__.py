"""``heteroflow-gpu``: a Nomad device plugin over the agent's GPU detectors, so that Nomad
itself accounts for every vendor's accelerators (see docs/device-plugin.md)."""
