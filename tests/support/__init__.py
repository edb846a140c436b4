"""What helps tests rather than being one: the Nomad API double, the engine double, process
harnesses, stand-ins and factories shared across the test folders (and run by bench/)."""
