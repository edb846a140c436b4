"""Use cases. Each owns its transaction boundary; none calls the network inside one."""
