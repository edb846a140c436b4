# HeteroFlow itself on Nomad, for when one machine is outgrown: one bridge (REST API and the
# placement reconciler; more replicas are safe, one of them reconciles at a time) and
# several gateway replicas behind Consul, all on an external PostgreSQL.
#   nomad job run jobspecs/heteroflow.nomad.hcl
# Secrets (database URL, Nomad token, gateway token, secret key) come from Nomad Variables.

variable "image" {
  type    = string
  default = "ghcr.io/heteroflow/heteroflow:latest"
}

variable "gateway_replicas" {
  type    = number
  default = 3
}

job "heteroflow" {
  type     = "service"
  priority = 90

  update {
    max_parallel     = 1
    health_check     = "checks"
    min_healthy_time = "10s"
    healthy_deadline = "3m"
    auto_revert      = true
  }

  group "bridge" {
    count = 1

    network {
      port "http" {
        to = 3333
      }
    }

    service {
      name     = "heteroflow-bridge"
      port     = "http"
      provider = "consul"

      check {
        type     = "http"
        path     = "/healthz"
        interval = "10s"
        timeout  = "3s"
      }
    }

    task "bridge" {
      driver = "docker"

      config {
        image = var.image
        args  = ["server", "--host", "0.0.0.0", "--port", "3333"]
        ports = ["http"]
      }

      env {
        NOMAD_ADDR       = "http://${attr.unique.network.ip-address}:4646"
        CONSUL_HTTP_ADDR = "${attr.unique.network.ip-address}:8500"
      }

      template {
        destination = "secrets/bridge.env"
        env         = true
        data        = <<-EOT
          {{- with nomadVar "nomad/jobs/heteroflow" -}}
          HETEROFLOW_DATABASE_URL={{ .database_url }}
          HETEROFLOW_SECRET_KEY={{ .secret_key }}
          NOMAD_TOKEN={{ .nomad_token }}
          {{- end }}
        EOT
      }

      resources {
        cpu    = 1000
        memory = 512
      }
    }
  }

  group "gateway" {
    count = var.gateway_replicas

    spread {
      attribute = "${node.unique.id}"
    }

    network {
      port "http" {
        to = 3333
      }
    }

    service {
      name     = "heteroflow-gateway"
      port     = "http"
      provider = "consul"
      tags     = ["openai"]

      check {
        type     = "http"
        path     = "/healthz"
        interval = "5s"
        timeout  = "2s"
      }
    }

    task "gateway" {
      driver = "docker"

      config {
        image = var.image
        args  = ["gateway", "--host", "0.0.0.0", "--port", "3333", "--workers", "2"]
        ports = ["http"]
      }

      env {
        CONSUL_HTTP_ADDR      = "${attr.unique.network.ip-address}:8500"
        HETEROFLOW_BRIDGE_URL = "http://heteroflow-bridge.service.consul:3333"
      }

      template {
        destination = "secrets/gateway.env"
        env         = true
        data        = <<-EOT
          {{- with nomadVar "nomad/jobs/heteroflow" -}}
          HETEROFLOW_DATABASE_URL={{ .database_url }}
          HETEROFLOW_SECRET_KEY={{ .secret_key }}
          HETEROFLOW_GATEWAY_TOKEN={{ .gateway_token }}
          {{- end }}
        EOT
      }

      resources {
        cpu    = 2000
        memory = 512
      }
    }
  }
}
