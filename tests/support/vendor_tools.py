"""Every vendor's tool as a real executable replaying its recorded output (the same
recordings the detector tests use), and a host /dev tree with the nodes those devices
have, for running the device plugin against all eleven vendors at once."""

from __future__ import annotations

from pathlib import Path

from tests.support.agent_helpers import GPU_FIXTURES, ToolBox

# the DRM card number udev would give each recorded DRM device, by PCI address
DRI_CARDS = {"0000:0c:00.0": 0, "0000:22:00.0": 1,  # amd
             "0000:3d:00.0": 2, "0000:5e:00.0": 3,  # hygon
             "0000:2a:00.0": 4, "0000:2b:00.0": 5,  # musa
             "0000:0f:00.0": 6, "0000:34:00.0": 7}  # metax
_NODES = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset", "nvidia0",
          "nvidia1", "kfd", "mkfd", "davinci_manager", "devmm_svm", "hisi_hdc", "davinci0",
          "davinci1", "mtgpu.0", "mtgpu.1", "biren0", "biren1", "cambricon_ctl",
          "cambricon_ipcm0", "cambricon_ipcm1", "cambricon_dev0", "cambricon_dev1",
          "itrctl", "iluvatar0", "iluvatar1", "mxcd", "mxnd", "mxgd", "gcuctl", "gcu0",
          "gcu1", "xpuctrl", "xpu0", "xpu1")


def add_all_vendor_tools(box: ToolBox) -> None:
    box.add("nvidia-smi", replay="nvidia_smi_a100x2.csv")
    box.add("amd-smi", body=(
        f'case "$1" in static) cat {GPU_FIXTURES}/amd_smi_static_mi300x.json ;;\n'
        f'metric) cat {GPU_FIXTURES}/amd_smi_metric_mi300x.json ;; esac'))
    box.add("hy-smi", replay="hy_smi_k100ai.json")
    box.add("npu-smi", by_args={"info": "npu_smi_910b.txt", "info -m": "npu_smi_910b_m.txt"})
    box.add("mthreads-gmi", replay="mthreads_gmi_s5000.json")
    box.add("brsmi", replay="brsmi_106m.csv")
    box.add("cnmon", body=(f"cp {GPU_FIXTURES}/cnmon_info_mlu370.json cnmon_info.json\n"
                           'echo "Card 0 MLU370-X8 (human table)"'))
    box.add("ixsmi", replay="ixsmi_mrv100.csv")
    box.add("mx-smi", replay="mx_smi_c550.txt")
    box.add("efsmi", replay="efsmi_s60.txt")
    box.add("xpu_smi", replay="xpu_smi_p800.txt")


def make_host_root(root: Path) -> Path:
    """A host's /dev (plain files stand in for device nodes; DRM nodes have udev's
    by-path links) and Ascend's driver folder, under ``root``. The third Ascend chip has
    no /dev/davinci2, to test a missing node."""
    dev = root / "dev"
    (dev / "dri" / "by-path").mkdir(parents=True)
    for name in _NODES:
        (dev / name).touch()
    for pci, card in DRI_CARDS.items():
        (dev / "dri" / f"card{card}").touch()
        (dev / "dri" / f"renderD{128 + card}").touch()
        (dev / "dri" / "by-path" / f"pci-{pci}-card").symlink_to(f"../card{card}")
        (dev / "dri" / "by-path" / f"pci-{pci}-render").symlink_to(f"../renderD{128 + card}")
    (root / "usr" / "local" / "Ascend" / "driver").mkdir(parents=True)
    return root
