"""Iluvatar CoreX GPUs from ``ixsmi``, which keeps nvidia-smi's query interface
(``--query-gpu=... --format=csv,noheader``; values carry units: "32768 MiB", "0 %")."""

from __future__ import annotations

from agent_plugin.detectors.base import DetectContext
from agent_plugin.detectors.smi_csv import BASE_FIELDS, parse_query_csv, query_args
from agent_plugin.models import GpuDevice


class IluvatarDetector:
    vendor = "iluvatar"

    async def detect(self, ctx: DetectContext) -> list[GpuDevice]:
        out = await ctx.tools.run("ixsmi", *query_args(BASE_FIELDS, nounits=False))
        return parse_query_csv(out.stdout, vendor=self.vendor, tool="ixsmi")
