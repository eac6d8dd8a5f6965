"""Where a run ran: threads, processor, accelerator, library builds.

Training on a CPU is bit-reproducible only on the same kind of processor, with
the same number of threads and the same torch build: a different thread count
changes the order of floating-point sums (and so the first epoch already), and
another processor may take other kernels.  :func:`machine_info` records all of
it in a run's ``config.yaml``, so that a rerun can say whether it should give
the same digits or only agree within seed noise.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import torch

__all__ = ["machine_info", "cpu_model", "set_threads"]


def cpu_model() -> str:
    """The processor's model name (``/proc/cpuinfo`` on Linux, else :func:`platform.processor`).

    Examples
    --------
    >>> isinstance(cpu_model(), str) and len(cpu_model()) > 0
    True
    """
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "cpu model") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def set_threads(threads: int | None) -> int:
    """Pin torch's intra-op threads to ``threads`` (``None`` leaves them); returns the count in force.

    Raises
    ------
    ValueError
        ``threads`` below 1.
    """
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, not {threads}")
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def machine_info(device: torch.device | str = "cpu") -> dict[str, Any]:
    """What decides whether a rerun gives the same digits: threads, CPU, GPU, builds, determinism.

    Examples
    --------
    >>> info = machine_info("cpu")
    >>> info["threads"] == torch.get_num_threads(), {"cpu", "gpu", "torch", "deterministic"} <= set(info)
    (True, True)
    """
    import torchvision

    device = torch.device(device)
    gpu = None
    if device.type == "cuda" and torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(device)
    elif device.type == "mps":
        gpu = "Apple MPS"
    return {
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpu": gpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "torch_git": str(getattr(torch.version, "git_version", "") or ""),
        "cuda_build": torch.version.cuda,
        "torchvision": str(torchvision.__version__),
        "deterministic": bool(torch.are_deterministic_algorithms_enabled()),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "env_threads": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ},
    }
