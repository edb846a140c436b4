"""HeteroFlow bridge: the REST API, PostgreSQL storage and the Nomad translation."""
