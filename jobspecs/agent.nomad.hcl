# The HeteroFlow node agent on every client node: GPU detection, model scanning, sleep/wake
# of engines, and the node metadata that inference jobs constrain on.
#   nomad job run -var bridge_url=http://bridge.service.consul:3333 jobspecs/agent.nomad.hcl
# The agent's node token is read from Nomad Variables (nomad/jobs/heteroflow-agent), never
# written into the job.

variable "bridge_url" {
  type    = string
  default = "http://heteroflow-bridge.service.consul:3333"
}

variable "image" {
  type    = string
  default = "ghcr.io/heteroflow/heteroflow:latest"
}

job "heteroflow-agent" {
  type     = "system"
  priority = 90

  group "agent" {
    network {
      port "agent" {
        static = 3334 # the bridge calls the agent here for sleep/wake
      }
    }

    task "agent" {
      driver = "docker"

      config {
        image        = var.image
        args         = ["agent", "--listen", "0.0.0.0:3334"]
        ports        = ["agent"]
        # NVML and the vendors' tools need to see the devices; sleep/wake talks to engines
        # on this host's ports.
        network_mode = "host"
        privileged   = true

        mount {
          type     = "bind"
          source   = "/models"
          target   = "/models"
          readonly = true
        }

        # docker pause/unpause for engines without a sleep API, and engine image detection
        mount {
          type   = "bind"
          source = "/var/run/docker.sock"
          target = "/var/run/docker.sock"
        }
      }

      env {
        HETEROFLOW_BRIDGE_URL     = var.bridge_url
        HETEROFLOW_MODEL_ROOTS    = "/models"
        # stable across container restarts, and the address the bridge can reach
        HETEROFLOW_NODE_ID        = "${node.unique.id}"
        HETEROFLOW_NOMAD_NODE_ID  = "${node.unique.id}"
        HETEROFLOW_ADVERTISE_HOST = "${attr.unique.network.ip-address}"
        HETEROFLOW_AGENT_URL      = "http://${attr.unique.network.ip-address}:3334"
        NOMAD_ADDR                = "http://${attr.unique.network.ip-address}:4646"
      }

      template {
        destination = "secrets/agent.env"
        env         = true
        data        = <<-EOT
          {{- with nomadVar "nomad/jobs/heteroflow-agent" -}}
          HETEROFLOW_NODE_TOKEN={{ .node_token }}
          NOMAD_TOKEN={{ .nomad_token }}
          {{- end }}
        EOT
      }

      resources {
        cpu    = 200
        memory = 256
      }
    }
  }
}
