"""Placement: where a service's tasks run, and keeping their rows true to it.

    port.py          what the services call (validate, submit, withdraw, stop, retry, scale)
    shared.py        what both implementations decide alike (tasks holding GPUs, engines)
    nomad/           on a Nomad cluster: the placer renders and registers jobs, the
                     reconciler follows Nomad (load -> decide -> apply)
    local/           on the bridge's own nodes: first fit on the GPUs the agents report,
                     the agents run the engines (load -> decide -> apply)
"""
