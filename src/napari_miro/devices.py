"""Which torch device to compute on: "auto" = CUDA, then Apple MPS, then CPU.

Pure core (torch): imports neither Qt nor napari.
"""

from __future__ import annotations

import torch

__all__ = ["OUT_OF_MEMORY_ERRORS", "DeviceOutOfMemory", "available_devices", "resolve_device"]

#: What torch raises when a device runs out of memory (CUDA, MPS; the CPU raises MemoryError or RuntimeError).
OUT_OF_MEMORY_ERRORS: tuple[type[BaseException], ...] = (
    getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError),
)


class DeviceOutOfMemory(RuntimeError):
    """The device ran out of memory; the message says what to change."""

    def __init__(self, device: object, what: str) -> None:
        super().__init__(
            f"{device} ran out of memory while {what}. Try the compact preset, fewer localizations per field or "
            f"per batch, or the CPU (device 'cpu'); the model and your data are unchanged."
        )


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def resolve_device(device: str = "auto") -> torch.device:
    """Turn "auto" into CUDA, then Apple MPS, then CPU; any other name is checked to exist here."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but this machine has no usable CUDA GPU; use 'auto' or 'cpu'")
    if device == "mps" and not _mps_available():
        raise ValueError("device 'mps' was asked for, but Apple MPS is not available here; use 'auto' or 'cpu'")
    if device not in ("cpu", "cuda", "mps") and not device.startswith("cuda:"):
        raise ValueError(f"unknown device {device!r}: choose auto, cpu, cuda or mps")
    return torch.device(device)


def available_devices() -> list[str]:
    """The devices this machine offers, for a device menu ("auto" first)."""
    devices = ["auto", "cpu"]
    if torch.cuda.is_available():
        devices.insert(1, "cuda")
    if _mps_available():
        devices.insert(1, "mps")
    return devices
