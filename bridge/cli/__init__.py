"""The ``heteroflow`` command line: servers (up, server) and REST client commands."""
