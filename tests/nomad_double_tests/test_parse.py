"""/v1/jobs/parse: HCL2 -> the bare api.Job JSON, with and without canonicalization."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.nomad_double.hcl import HclError, parse_job

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "nomad" / "jobs" / "vllm-gpu.hcl"
S = 1_000_000_000


class TestParseJob:
    def test_stanzas_map_to_nomad_json_keys(self) -> None:
        job = parse_job(FIXTURE.read_text())
        assert job["ID"] == job["Name"] == "llm-qwen25-7b"
        assert job["Meta"] == {"managed-by": "heteroflow", "heteroflow.tg": "tg-default-1a2b"}
        assert job["Constraints"] == [
            {"LTarget": "${meta.heteroflow.gpu.vendor}", "RTarget": "nvidia", "Operand": "="},
            {"LTarget": "${meta.heteroflow.gpu.cc}", "RTarget": ">= 8.0", "Operand": "version"},
            {"LTarget": "${meta.heteroflow.models}", "RTarget": "Qwen2.5-7B-Instruct",
             "Operand": "set_contains"}]
        assert job["Affinities"][0]["Weight"] == 50
        assert job["Update"]["HealthyDeadline"] == 15 * 60 * S
        assert job["Update"]["MinHealthyTime"] == 30 * S
        group = job["TaskGroups"][0]
        network = group["Networks"][0]
        assert network["DynamicPorts"] == [{"Label": "http", "Value": 0, "To": 8000,
                                            "HostNetwork": "", "IgnoreCollision": False}]
        assert network["ReservedPorts"][0]["Label"] == "metrics"
        assert network["ReservedPorts"][0]["Value"] == 9400
        check = group["Services"][0]["Checks"][0]
        assert (check["Interval"], check["Timeout"]) == (10 * S, 2 * S)
        assert check["CheckRestart"]["Grace"] == 600 * S
        assert group["Scaling"] == {"Min": 0, "Max": 8, "Policy": None, "Enabled": True,
                                    "Type": "horizontal", "ID": "", "Namespace": "",
                                    "Target": None, "CreateIndex": 0, "ModifyIndex": 0}
        assert group["Volumes"]["models"]["ReadOnly"] is True
        assert group["Spreads"][0]["Attribute"] == "${node.unique.id}"
        task = group["Tasks"][0]
        assert task["KillTimeout"] == 90 * S
        assert task["Env"]["VLLM_PORT"] == "${NOMAD_PORT_http}"
        assert task["Config"]["mount"] == [{"type": "bind", "source": "/srv/models",
                                            "target": "/models", "readonly": True}]
        assert task["Config"]["ulimit"] == [{"memlock": "-1", "stack": "67108864"}]
        assert task["Config"]["devices"][0]["cgroup_permissions"] == "rwm"
        device = task["Resources"]["Devices"][0]
        assert device["Name"] == "nvidia/gpu"
        assert device["Constraints"][0] == {"LTarget": "${device.attr.memory}",
                                            "RTarget": "40 GiB", "Operand": ">="}
        assert task["VolumeMounts"][0]["Destination"] == "/models"
        assert task["Templates"][0]["EmbeddedTmpl"] == (
            'MODEL_NAME={{ env "NOMAD_META_engine" }}\nALLOC=${NOMAD_ALLOC_ID}\n')
        assert task["LogConfig"]["MaxFileSizeMB"] == 20

    def test_unset_fields_are_present_as_go_zero_values(self) -> None:
        job = parse_job('job "x" {\n group "g" {\n task "t" {\n driver = "docker"\n }\n }\n}\n')
        assert job["Priority"] is None and job["Datacenters"] is None
        task = job["TaskGroups"][0]["Tasks"][0]
        assert task["User"] == "" and task["Resources"] is None and task["Leader"] is False

    def test_distinct_hosts_shorthand(self) -> None:
        job = parse_job('job "x" {\n constraint {\n distinct_hosts = true\n }\n'
                        ' group "g" {\n task "t" {\n driver = "docker"\n }\n }\n}\n')
        assert job["Constraints"] == [{"LTarget": "", "RTarget": "true",
                                       "Operand": "distinct_hosts"}]

    @pytest.mark.parametrize(("text", "message"), [
        ('job "x" {\n  bogus = 1\n}\n', 'An argument named "bogus" is not expected here'),
        ('job "x" {\n  group "g" {\n    count = "many"\n  }\n}\n', "a number is required"),
        ('job "x" {\n  update {\n    min_healthy_time = "10 parsecs"\n  }\n}\n',
         "Unsuitable duration value"),
        ('job "x" {\n  group "g" {\n', "Invalid syntax"),
        ('group "g" {}\n', 'Blocks of type "group" are not expected here'),
    ])
    def test_errors(self, text: str, message: str) -> None:
        with pytest.raises(HclError, match=message):
            parse_job(text)


class TestParseEndpoint:
    async def test_bare_job_without_defaults(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/v1/jobs/parse", json={"JobHCL": FIXTURE.read_text()})
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("application/json")
        job = response.json()
        assert "Job" not in job and job["ID"] == "llm-qwen25-7b"
        assert job["TaskGroups"][0]["EphemeralDisk"]["SizeMB"] == 1024
        assert job["TaskGroups"][0]["RestartPolicy"]["RenderTemplates"] is None

    async def test_canonicalize_fills_api_defaults(self, client: httpx.AsyncClient) -> None:
        hcl = ('job "small" {\n  group "g" {\n    task "t" {\n      driver = "docker"\n'
               '      service {\n        port = "http"\n      }\n    }\n  }\n}\n')
        job = (await client.put("/v1/jobs/parse",
                                json={"JobHCL": hcl, "Canonicalize": True})).json()
        assert (job["Namespace"], job["Region"], job["Type"], job["Priority"]) == (
            "default", "global", "service", 50)
        assert job["Update"]["MaxParallel"] == 1
        assert job["Update"]["HealthyDeadline"] == 300 * S
        group = job["TaskGroups"][0]
        assert group["Count"] == 1
        assert group["EphemeralDisk"] == {"Sticky": False, "Migrate": False, "SizeMB": 300}
        assert group["RestartPolicy"] == {"Interval": 1800 * S, "Attempts": 2, "Delay": 15 * S,
                                          "Mode": "fail", "RenderTemplates": False}
        assert group["ReschedulePolicy"]["Unlimited"] is True
        assert group["ReschedulePolicy"]["DelayFunction"] == "exponential"
        task = group["Tasks"][0]
        assert task["Resources"]["CPU"] == 100 and task["Resources"]["MemoryMB"] == 300
        assert task["KillTimeout"] == 5 * S
        assert task["LogConfig"] == {"MaxFiles": 10, "MaxFileSizeMB": 10, "Enabled": None,
                                     "Disabled": False}
        service = task["Services"][0]
        assert service["Name"] == "small-g-t" and service["Provider"] == "consul"

    @pytest.mark.parametrize(("body", "status", "text"), [
        ({"JobHCL": ""}, 400, "Job spec is empty"),
        ({}, 400, "Job spec is empty"),
        ({"JobHCL": 'job "x" {\n  nope = 1\n}\n'}, 400, "Failed to parse job: input.hcl"),
    ])
    async def test_errors_are_plain_text(self, client: httpx.AsyncClient, body: object,
                                         status: int, text: str) -> None:
        response = await client.post("/v1/jobs/parse", json=body)
        assert response.status_code == status
        assert response.headers["Content-Type"].startswith("text/plain")
        assert response.text.startswith(text)

    async def test_empty_body_and_wrong_method(self, client: httpx.AsyncClient) -> None:
        empty = await client.post("/v1/jobs/parse", content=b"")
        assert (empty.status_code, empty.text) == (400, "Request body is empty")
        wrong = await client.get("/v1/jobs/parse")
        assert (wrong.status_code, wrong.text) == (405, "Invalid method")

    async def test_parsed_job_registers(self, client: httpx.AsyncClient) -> None:
        job = (await client.post("/v1/jobs/parse", json={"JobHCL": FIXTURE.read_text(),
                                                         "Canonicalize": True})).json()
        response = await client.put("/v1/jobs", json={"Job": job})
        assert response.status_code == 200, response.text
        stored = (await client.get("/v1/job/llm-qwen25-7b")).json()
        implied = stored["TaskGroups"][0]["Constraints"]
        assert {"LTarget": "${attr.consul.version}", "RTarget": ">= 1.8.0",
                "Operand": "semver"} in implied
        assert {"LTarget": "${attr.os.signals}", "RTarget": "SIGTERM",
                "Operand": "set_contains"} in implied
