"""Azure VM sizes: CPUs, memory (GiB) and GPUs, so a v1 ``vm_size`` means the same capacity here.

A GPU target becomes an Airflow pool with one slot per GPU, so the GPU count matters; the CPU
and memory figures become container and pod resource requests on those backends.
"""

from __future__ import annotations

from typing import NamedTuple


class VmSize(NamedTuple):
    cpus: int
    memory_gb: float
    gpus: int
    gpu_model: str | None = None


VM_SIZES: dict[str, VmSize] = {
    # General purpose
    "STANDARD_D1_V2": VmSize(1, 3.5, 0),
    "STANDARD_D2_V2": VmSize(2, 7, 0),
    "STANDARD_D3_V2": VmSize(4, 14, 0),
    "STANDARD_D4_V2": VmSize(8, 28, 0),
    "STANDARD_D5_V2": VmSize(16, 56, 0),
    "STANDARD_D11_V2": VmSize(2, 14, 0),
    "STANDARD_D12_V2": VmSize(4, 28, 0),
    "STANDARD_D13_V2": VmSize(8, 56, 0),
    "STANDARD_D14_V2": VmSize(16, 112, 0),
    "STANDARD_DS1_V2": VmSize(1, 3.5, 0),
    "STANDARD_DS2_V2": VmSize(2, 7, 0),
    "STANDARD_DS3_V2": VmSize(4, 14, 0),
    "STANDARD_DS4_V2": VmSize(8, 28, 0),
    "STANDARD_DS5_V2": VmSize(16, 56, 0),
    "STANDARD_DS11_V2": VmSize(2, 14, 0),
    "STANDARD_DS12_V2": VmSize(4, 28, 0),
    "STANDARD_DS13_V2": VmSize(8, 56, 0),
    "STANDARD_DS14_V2": VmSize(16, 112, 0),
    "STANDARD_D2_V3": VmSize(2, 8, 0),
    "STANDARD_D4_V3": VmSize(4, 16, 0),
    "STANDARD_D8_V3": VmSize(8, 32, 0),
    "STANDARD_D16_V3": VmSize(16, 64, 0),
    "STANDARD_D32_V3": VmSize(32, 128, 0),
    "STANDARD_D2S_V3": VmSize(2, 8, 0),
    "STANDARD_D4S_V3": VmSize(4, 16, 0),
    "STANDARD_D8S_V3": VmSize(8, 32, 0),
    "STANDARD_D16S_V3": VmSize(16, 64, 0),
    "STANDARD_D32S_V3": VmSize(32, 128, 0),
    "STANDARD_D2AS_V4": VmSize(2, 8, 0),
    "STANDARD_D4AS_V4": VmSize(4, 16, 0),
    "STANDARD_D8AS_V4": VmSize(8, 32, 0),
    "STANDARD_D16AS_V4": VmSize(16, 64, 0),
    "STANDARD_F2S_V2": VmSize(2, 4, 0),
    "STANDARD_F4S_V2": VmSize(4, 8, 0),
    "STANDARD_F8S_V2": VmSize(8, 16, 0),
    "STANDARD_F16S_V2": VmSize(16, 32, 0),
    "STANDARD_F32S_V2": VmSize(32, 64, 0),
    "STANDARD_E2S_V3": VmSize(2, 16, 0),
    "STANDARD_E4S_V3": VmSize(4, 32, 0),
    "STANDARD_E8S_V3": VmSize(8, 64, 0),
    "STANDARD_E16S_V3": VmSize(16, 128, 0),
    "STANDARD_E32S_V3": VmSize(32, 256, 0),
    # GPU: NC (K80), NCv2 (P100), NCv3 (V100), NCasT4_v3 (T4), NC A100 v4
    "STANDARD_NC6": VmSize(6, 56, 1, "K80"),
    "STANDARD_NC12": VmSize(12, 112, 2, "K80"),
    "STANDARD_NC24": VmSize(24, 224, 4, "K80"),
    "STANDARD_NC24R": VmSize(24, 224, 4, "K80"),
    "STANDARD_NC6S_V2": VmSize(6, 112, 1, "P100"),
    "STANDARD_NC12S_V2": VmSize(12, 224, 2, "P100"),
    "STANDARD_NC24S_V2": VmSize(24, 448, 4, "P100"),
    "STANDARD_NC24RS_V2": VmSize(24, 448, 4, "P100"),
    "STANDARD_NC6S_V3": VmSize(6, 112, 1, "V100"),
    "STANDARD_NC12S_V3": VmSize(12, 224, 2, "V100"),
    "STANDARD_NC24S_V3": VmSize(24, 448, 4, "V100"),
    "STANDARD_NC24RS_V3": VmSize(24, 448, 4, "V100"),
    "STANDARD_NC4AS_T4_V3": VmSize(4, 28, 1, "T4"),
    "STANDARD_NC8AS_T4_V3": VmSize(8, 56, 1, "T4"),
    "STANDARD_NC16AS_T4_V3": VmSize(16, 110, 1, "T4"),
    "STANDARD_NC64AS_T4_V3": VmSize(64, 440, 4, "T4"),
    "STANDARD_NC24ADS_A100_V4": VmSize(24, 220, 1, "A100"),
    "STANDARD_NC48ADS_A100_V4": VmSize(48, 440, 2, "A100"),
    "STANDARD_NC96ADS_A100_V4": VmSize(96, 880, 4, "A100"),
    # ND (P40, V100, A100)
    "STANDARD_ND6S": VmSize(6, 112, 1, "P40"),
    "STANDARD_ND12S": VmSize(12, 224, 2, "P40"),
    "STANDARD_ND24S": VmSize(24, 448, 4, "P40"),
    "STANDARD_ND24RS": VmSize(24, 448, 4, "P40"),
    "STANDARD_ND40RS_V2": VmSize(40, 672, 8, "V100"),
    "STANDARD_ND96ASR_V4": VmSize(96, 900, 8, "A100"),
    "STANDARD_ND96AMSR_A100_V4": VmSize(96, 1900, 8, "A100"),
    # NV (visualisation GPUs)
    "STANDARD_NV6": VmSize(6, 56, 1, "M60"),
    "STANDARD_NV12": VmSize(12, 112, 2, "M60"),
    "STANDARD_NV24": VmSize(24, 224, 4, "M60"),
    "STANDARD_NV12S_V3": VmSize(12, 112, 1, "M60"),
    "STANDARD_NV24S_V3": VmSize(24, 224, 2, "M60"),
    "STANDARD_NV48S_V3": VmSize(48, 448, 4, "M60"),
}


def lookup_vm_size(vm_size: str) -> VmSize | None:
    """Azure treats VM size names case-insensitively; so do we."""
    return VM_SIZES.get(vm_size.upper()) if isinstance(vm_size, str) else None
