"""Hygon DCUs: ``hy-smi --json`` (DTK's renamed rocm-smi), or DTK's own ``rocm-smi`` when
hy-smi is absent, keeping only the cards that are Hygon's (see ``is_hygon_card``).

hy-smi labels: "Card Series", "Unique ID", "DCU use (%)" (newer drivers "HCU use (%)"),
"vram Total Memory (MiB)" / "vram Total Used Memory (MiB)", "Temperature (Sensor core) (C)",
"Average Graphics Package Power (W)".
"""

from __future__ import annotations

from agent_plugin.detectors.base import DetectContext
from agent_plugin.detectors.rocm_json import is_hygon_card, parse_rocm_json
from agent_plugin.errors import DetectError
from agent_plugin.models import GpuDevice

HY_SMI_ARGS = ("--showproductname", "--showuniqueid", "--showbus", "--showmeminfo", "vram",
               "--showuse", "--showtemp", "--showpower", "--json")


class HygonDetector:
    vendor = "hygon"

    async def detect(self, ctx: DetectContext) -> list[GpuDevice]:
        try:
            out = await ctx.tools.run("hy-smi", *HY_SMI_ARGS)
            return parse_rocm_json(out.stdout, vendor=self.vendor, tool="hy-smi",
                                   accept=lambda card: True)
        except DetectError as hy_problem:
            if ctx.tools.which("rocm-smi") is None:
                raise
            try:
                out = await ctx.tools.run("rocm-smi", *HY_SMI_ARGS)
            except DetectError as rocm_problem:
                raise DetectError(f"hy-smi: {hy_problem.message}; "
                                  f"rocm-smi: {rocm_problem.message}") from None
            devices = parse_rocm_json(out.stdout, vendor=self.vendor, tool="rocm-smi",
                                      accept=is_hygon_card)
            if not devices:
                raise DetectError(f"hy-smi: {hy_problem.message}; rocm-smi lists no Hygon "
                                  "DCU") from None
            return devices
