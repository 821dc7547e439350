"""Acquisition of the phantom: field of view and grid, bias field, noise, 2-point Dixon reconstruction, storage.

Signal chain (per voxel, magnitudes): the noise-free water ``W0`` and fat ``F0`` are multiplied by a smooth
receive-coil bias field ``B``; the scanner measures the in-phase ``IP = |B (W0 + F0) + n1|`` and opposed-phase
``OP = |B (W0 - F0) + n2|`` echoes with complex Gaussian noise ``n`` (so both are Rician); water and fat are then
reconstructed as ``(IP + OP) / 2`` and ``(IP - OP) / 2`` with the dominant species known (as a phase-resolved
vendor reconstruction does), and all four images are stored as integers like a vendor's series.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scripts.phantom.render import RenderGrid

__all__ = ["FOV_MM", "PRESETS", "Acquisition", "make_grid", "bias_field", "dixon_signals", "to_storage"]

#: field of view of the paper's reference geometry: 400 x 320 x 145 voxels of 1.094 x 1.094 x 2.6 mm.
FOV_MM: tuple[float, float, float] = (437.5, 350.0, 377.0)
#: named geometries: (shape, spacing mm).
PRESETS: dict[str, tuple[tuple[int, int, int], tuple[float, float, float]]] = {
    "reference": ((400, 320, 145), (1.09375, 1.09375, 2.6)),
    "low": ((219, 175, 75), (2.0, 2.0, 5.0)),
    "tiny": ((64, 52, 32), (6.8, 6.8, 11.8)),
}
STORAGE_SCALE = 1000.0  # integer units per unit signal (fat = 1.0 -> about 1000)


@dataclass
class Acquisition:
    """How a phantom subject is 'scanned' and stored.

    Args:
        shape: voxels (x, y, z) of the stored image, axial slices along z.
        spacing: voxel size in mm.
        orientation: "RAS" or "LPS" storage of the axial slices (the anatomy is the same in world space).
        coverage: "full" (T12 to the hips) or "truncated" (a random cranio-caudal part, cutting muscles).
        swap: "none", "global" (water and fat exchanged everywhere) or "regional" (in one blob).
        ff_scale: how the FF map is stored: "fraction" (0-1 float), "percent" (0-100 float) or "permille"
            (0-1000 int16).
        snr: in-phase muscle signal over the noise SD (per echo).
        bias: strength of the multiplicative bias field (0 = none; 1 = about +-35 % plus a posterior coil gain).
        fov_shift_mm: shift of the field of view relative to the anatomy (x, y, z).
    """

    shape: tuple[int, int, int] = PRESETS["reference"][0]
    spacing: tuple[float, float, float] = PRESETS["reference"][1]
    orientation: str = "RAS"
    coverage: str = "full"
    swap: str = "none"
    ff_scale: str = "fraction"
    snr: float = 30.0
    bias: float = 1.0
    fov_shift_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        self.shape = tuple(int(v) for v in self.shape)  # type: ignore[assignment]
        self.spacing = tuple(float(v) for v in self.spacing)  # type: ignore[assignment]
        checks = {
            "orientation": ("RAS", "LPS"),
            "coverage": ("full", "truncated"),
            "swap": ("none", "global", "regional"),
            "ff_scale": ("fraction", "percent", "permille"),
        }
        for name, allowed in checks.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"Acquisition.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if len(self.shape) != 3 or min(self.shape) < 8:
            raise ValueError(f"Acquisition.shape must be 3 sizes >= 8 voxels, got {self.shape}")
        if len(self.spacing) != 3 or min(self.spacing) <= 0:
            raise ValueError(f"Acquisition.spacing must be 3 positive sizes in mm, got {self.spacing}")
        if self.snr <= 0:
            raise ValueError(f"Acquisition.snr must be > 0, got {self.snr}")
        if self.bias < 0:
            raise ValueError(f"Acquisition.bias must be >= 0, got {self.bias}")

    @classmethod
    def preset(cls, name: str, **kwargs) -> Acquisition:
        """An acquisition with a named geometry (``PRESETS``) and other fields from ``kwargs``."""
        if name not in PRESETS:
            raise ValueError(f"unknown geometry preset {name!r}; expected one of {sorted(PRESETS)}")
        shape, spacing = PRESETS[name]
        return cls(shape=shape, spacing=spacing, **kwargs)

    @classmethod
    def from_spacing(cls, spacing: tuple[float, float, float], **kwargs) -> Acquisition:
        """An acquisition covering the reference field of view at ``spacing`` mm."""
        shape = tuple(max(8, int(round(f / s))) for f, s in zip(FOV_MM, spacing))
        return cls(shape=shape, spacing=tuple(spacing), **kwargs)  # type: ignore[arg-type]


def make_grid(acq: Acquisition) -> RenderGrid:
    """The RAS render grid: centred on the lumbar spine (world (0, 30, 65) mm) plus the acquisition's shift."""
    centre = np.array([0.0, 30.0, 65.0]) + np.asarray(acq.fov_shift_mm)
    origin = centre - (np.asarray(acq.shape) - 1) * np.asarray(acq.spacing) / 2.0
    return RenderGrid(acq.shape, acq.spacing, tuple(float(v) for v in origin))


def bias_field(grid: RenderGrid, strength: float, y_back: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth multiplicative field: exp of a random quadratic polynomial plus a posterior surface-coil gain.

    Args:
        grid: render grid.
        strength: 0 gives a field of ones.
        y_back: world y (mm) of the patient's back, where the posterior coil sits.
        rng: random generator.

    Returns:
        float32 array of ``grid.shape``.
    """
    if strength == 0:
        return np.ones(grid.shape, np.float32)
    ext = np.asarray(grid.spacing) * np.asarray(grid.shape) / 2.0
    cen = np.asarray(grid.origin) + ext
    x, y, z = ((grid.axis_coords(a) - cen[a]) / ext[a] for a in range(3))
    c = rng.normal(0, 0.12 * strength, 9)
    lx = c[0] * x + c[3] * x**2
    ly = c[1] * y + c[4] * y**2
    lz = c[2] * z + c[5] * z**2
    # receive sensitivity of the posterior coil falls with distance from the back (as in the MuscleMap sample)
    coil = rng.uniform(0.0, 0.5) * strength * np.exp(-(grid.axis_coords(1) - y_back) / 120.0)
    log_b = lx[:, None, None] + (ly + coil)[None, :, None] + lz[None, None, :]
    log_b = log_b + (c[6] * x[:, None] * y[None, :])[:, :, None]
    return np.exp(log_b - float(np.median(log_b))).astype(np.float32)


def dixon_signals(
    w0: np.ndarray, f0: np.ndarray, bias: np.ndarray, sigma: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Noisy in-phase, opposed-phase, water and fat magnitudes from noise-free water and fat.

    Args:
        w0, f0: noise-free water and fat signal (same shape).
        bias: multiplicative receive field (same shape).
        sigma: noise SD per real/imaginary channel of each echo.
        rng: random generator.

    Returns:
        (ip, op, water, fat) float32 arrays.
    """
    s_in = (w0 + f0) * bias
    s_op = (w0 - f0) * bias
    shape = w0.shape
    ip = np.hypot(
        s_in + sigma * rng.standard_normal(shape, dtype=np.float32),
        sigma * rng.standard_normal(shape, dtype=np.float32),
    )
    op = np.hypot(
        s_op + sigma * rng.standard_normal(shape, dtype=np.float32),
        sigma * rng.standard_normal(shape, dtype=np.float32),
    )
    water_dom = w0 >= f0
    half_sum = 0.5 * (ip + op)
    half_diff = np.abs(0.5 * (ip - op))
    water = np.where(water_dom, half_sum, half_diff)
    fat = np.where(water_dom, half_diff, half_sum)
    return ip.astype(np.float32), op.astype(np.float32), water.astype(np.float32), fat.astype(np.float32)


def to_storage(x: np.ndarray) -> np.ndarray:
    """Signal -> int16 vendor-like integers.

    Raises:
        ValueError: the signal holds NaN or infinity (a generator bug: cast to int16 it would be stored as 0).
    """
    if not np.isfinite(x).all():
        raise ValueError(
            f"phantom signal holds {int((~np.isfinite(x)).sum())} non-finite voxels: a bug in the phantom's drawing; "
            "report the seed and settings"
        )
    return np.clip(np.rint(x * STORAGE_SCALE), 0, 32767).astype(np.int16)


def reorient(data: np.ndarray, affine: np.ndarray, orientation: str) -> tuple[np.ndarray, np.ndarray]:
    """Store RAS-rendered ``data`` as ``orientation`` ("RAS" or "LPS"): flips the x and y axes for LPS."""
    if orientation == "RAS":
        return data, affine
    nx, ny = data.shape[:2]
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[0, 3], flip[1, 3] = nx - 1, ny - 1
    return np.ascontiguousarray(data[::-1, ::-1]), affine @ flip
