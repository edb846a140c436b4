"""What the bridge, the gateway and the node agent must agree on, written once: settings
parsers, secret masking, key hashing, load-balancing algorithm names, and the GPU vendor
table with its visible-device variables.

A leaf: it imports only the standard library, never the bridge, gateway or agent, so each
of the three can depend on it without depending on another.
"""
