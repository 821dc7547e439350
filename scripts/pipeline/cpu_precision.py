"""The network's arithmetic on a CPU: float32, or bfloat16 where the processor computes it natively.

Why: on a CPU the network is most of a subject's time (issue #24). Processors with native bfloat16 dot products
(x86 AVX512-BF16 or AMX, Arm SVE/NEON BF16) run the shipped UNet's 3D convolutions about three times faster in
bfloat16 than in float32 (docs/studies/speed.md, "bfloat16 on the CPU"); bfloat16 keeps float32's exponent range,
so the activations that overflow float16 (about 4e4) stay finite. Where the processor has no native bfloat16,
oneDNN emulates it and it is slower than float32, so "auto" keeps float32 there. MONAI's evaluator autocasts only
on CUDA (``--amp``), hence this wrapper for the CPU.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from monai.inferers import Inferer

__all__ = ["CPU_PRECISIONS", "CpuPrecisionInferer", "native_bfloat16", "resolve_cpu_precision"]

logger = logging.getLogger(__name__)

#: The accepted values of the ``cpu_precision`` option.
CPU_PRECISIONS = ("auto", "float32", "bfloat16")


def native_bfloat16() -> bool:
    """True when this CPU computes bfloat16 convolutions natively (oneDNN reports AVX512-BF16, AMX or Arm BF16)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without oneDNN or without the query
        return False


def resolve_cpu_precision(precision: str) -> str:
    """``precision`` as it will run: "auto" becomes "bfloat16" on a CPU with native bfloat16, else "float32".

    Raises:
        ValueError: ``precision`` is not one of :data:`CPU_PRECISIONS`.
    """
    if precision not in CPU_PRECISIONS:
        raise ValueError(
            f"cpu_precision must be one of {', '.join(CPU_PRECISIONS)}, not {precision!r}: 'auto' (bfloat16 where the "
            "CPU computes it natively), 'float32' (the same numbers on every machine) or 'bfloat16'"
        )
    if precision == "auto":
        return "bfloat16" if native_bfloat16() else "float32"
    return precision


class CpuPrecisionInferer(Inferer):
    """Wrap an inferer: on a CPU, run it under bfloat16 autocast when ``precision`` says so; return float32.

    Only CPU inputs are affected; on a GPU the call passes through unchanged (``--amp`` decides there). Under
    autocast the convolutions run in bfloat16 and their outputs are bfloat16; batch-norm statistics gathered by an
    inner :class:`~scripts.pipeline.batchnorm_adaptation.AdaptiveBatchNormInferer` are summed in float32 by its
    own code. The output is cast to float32, so softmax, argmax and everything after run as before.

    Args:
        inferer: the inner inferer, returning per-class outputs (B, C, X, Y, Z).
        precision: "auto", "float32" or "bfloat16" (:data:`CPU_PRECISIONS`); "auto" is resolved once, here.

    Raises:
        TypeError: ``inferer`` is not callable.
        ValueError: ``precision`` is not one of :data:`CPU_PRECISIONS`.
    """

    def __init__(self, inferer: Inferer, precision: str = "auto") -> None:
        if not callable(inferer):
            raise TypeError(f"inferer must be callable, not {type(inferer).__name__}")
        self.inferer = inferer
        self.requested = precision
        self.precision = resolve_cpu_precision(precision)
        if precision == "auto":
            logger.info("network on the CPU in %s (cpu_precision auto)", self.precision)

    def __call__(
        self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        """Run the inner inferer on ``inputs`` (B, C_in, X, Y, Z); return its (B, C, X, Y, Z) output in float32."""
        if inputs.device.type != "cpu" or self.precision == "float32":
            return self.inferer(inputs, network, *args, **kwargs)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = self.inferer(inputs, network, *args, **kwargs)
        return out.float()
