"""Biren GPUs from ``brsmi``.

Unverified: we found no public documentation of brsmi's output. Tools that monitor Biren
cards call it with nvidia-smi's query interface (``--query-gpu=... --format=csv,noheader``),
and that is what is parsed here; if a brsmi release differs, the detector reports the
output as unreadable (with the reason) instead of guessing.
"""

from __future__ import annotations

from agent_plugin.detectors.base import DetectContext
from agent_plugin.detectors.smi_csv import BASE_FIELDS, parse_query_csv, query_args
from agent_plugin.models import GpuDevice


class BirenDetector:
    vendor = "biren"

    async def detect(self, ctx: DetectContext) -> list[GpuDevice]:
        out = await ctx.tools.run("brsmi", *query_args(BASE_FIELDS, nounits=False))
        return parse_query_csv(out.stdout, vendor=self.vendor, tool="brsmi")
