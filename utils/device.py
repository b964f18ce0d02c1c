"""Which torch device a ``--device`` option means, checked before any work starts."""
from __future__ import annotations

import torch

from utils.errors import ToonFaceError

DEVICE_HELP = "auto, cpu, cuda or cuda:N"


def resolve_device(spec: str, local_rank: int | None = None) -> torch.device:
    """``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    ``local_rank`` picks the GPU of a torchrun process when the spec names no index. Raises
    ToonFaceError (one line) for any other spec (``mps``, ``tpu`` ...), for CUDA on a machine
    without it, and for a GPU index that does not exist.
    """
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise ToonFaceError(f"--device {spec}: expected {DEVICE_HELP}") from None
    if device.type not in ("cpu", "cuda"):
        raise ToonFaceError(f"--device {spec}: ToonFace runs on {DEVICE_HELP}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ToonFaceError(f"--device {spec}: CUDA is not available on this machine")
        if device.index is None:
            device = torch.device("cuda", local_rank or 0)
        if device.index >= torch.cuda.device_count():
            raise ToonFaceError(f"--device {spec}: this machine has {torch.cuda.device_count()} "
                                "CUDA device(s)")
    return device
