# A single-machine Nomad agent (server + client) for trying HeteroFlow's Nomad placement on
# a GPU workstation:   nomad agent -config nomad.hcl
# Then run the bridge with NOMAD_ADDR=http://127.0.0.1:4646 (and CONSUL_HTTP_ADDR for the
# gateway's pool), and the node agent as a system job (jobspecs/agent.nomad.hcl).
# For a real cluster, split this into server and client configs; the client parts below
# (docker plugin, the heteroflow-gpu device plugin, model folders) are what every GPU node
# needs.

datacenter = "dc1"
data_dir   = "/opt/nomad/data"
bind_addr  = "0.0.0.0"
plugin_dir = "/opt/nomad/plugins" # holds heteroflow-gpu (see the plugin block below)

server {
  enabled          = true
  bootstrap_expect = 1

  # A gold service may preempt bronze and silver ones when no GPU is free (the seed's
  # co-scheduling rule; docs/gpu-sharing.md, "Preemption"). Nomad preempts only for service
  # jobs whose priority is at least 10 above the victims' (gold 80, silver 50, bronze 20).
  # This default applies when the cluster is first bootstrapped; later, change it with
  # `nomad operator scheduler set-config -preempt-service-scheduler=true`.
  default_scheduler_config {
    preemption_config {
      service_scheduler_enabled = true
    }
  }
}

client {
  enabled = true

  # Placement constrains on node metadata (heteroflow.gpu.vendor, .count, .memory_mb, .cc,
  # heteroflow.engines, heteroflow.models) that the HeteroFlow agent publishes as dynamic
  # node metadata (POST /v1/client/metadata) once it has looked at the GPUs and models.

  # Model files live here on every GPU node; HETEROFLOW_MODEL_ROOTS must name the same folders.
  host_volume "models" {
    path      = "/models"
    read_only = true
  }
}

# The model folders are bind-mounted read-only, and GPU containers use the nvidia runtime
# (the docker driver switches to it when NVIDIA_VISIBLE_DEVICES is set by the device plugin).
plugin "docker" {
  config {
    allow_runtimes = ["runc", "nvidia"]

    volumes {
      enabled = true
    }

    # vLLM and SGLang with tensor parallelism want a large /dev/shm; shm_size needs nothing
    # extra, but NCCL over IPC would need: allowed_modes { ipc = ["private", "host"] }
  }
}

# HeteroFlow's device plugin reports every vendor's accelerators (NVIDIA, AMD, Hygon,
# Ascend, Moore Threads, Biren, Cambricon, Iluvatar, MetaX, Enflame, Kunlunxin) as
# "<vendor>/gpu" devices, so Nomad itself keeps two allocations off the same GPU. Install:
#   ln -s "$PWD/.venv/bin/heteroflow-gpu" /opt/nomad/plugins/heteroflow-gpu
# Nomad loads it by that file name. Every key has a default (docs/device-plugin.md); do not
# also load nomad-device-nvidia, or each NVIDIA GPU would be counted twice.
plugin "heteroflow-gpu" {
  config {
    fingerprint_period = "1m"
    # vendors          = ["nvidia", "amd"]  # default: every vendor
    # tool_timeout     = "10s"
  }
}

# Services register in the local Consul agent; the gateway's pool follows their checks.
consul {
  address = "127.0.0.1:8500"
}

telemetry {
  publish_allocation_metrics = true
  publish_node_metrics       = true
  prometheus_metrics         = true
}
