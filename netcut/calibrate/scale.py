"""Scale a profile by named calibration parameters, without fitting anything.

``netcut calibrate`` fits scales such as ``dispatch`` or ``compute`` to measured runs.
The same names let a user move a scale that was measured elsewhere onto another
profile ("host dispatch on PyTorch 1.x costs about 1.7x what the profile assumes"),
or ask what-if questions. Each name scales exactly the numbers the calibrator would.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from ..errors import InvalidInputError
from .edit import get_path, set_path, spelled_out
from .params import CATALOGUE, dtype_param


def scale_profile(profile, scales: Mapping[str, float], note: str | None = None):
    """``profile`` with each named parameter's numbers multiplied by its scale.

    Efficiencies stay at most 1, as in a fit. ``note`` (where the scales came from) is
    written into the sources of every number that moved. A calibrated profile loses its
    prediction interval (its record stays, with the scales added): the interval was
    measured for the numbers before they moved. Unknown names, parameters that do not
    apply to this profile, and scales that are not positive raise
    :class:`InvalidInputError`.
    """
    if not scales:
        return profile
    params = _params(profile, scales)
    dtypes = tuple(name.split("@", 1)[1] for name in scales if "@" in name)
    data = spelled_out(profile, dtypes)
    for name, value in scales.items():
        param = params[name]
        paths = param.paths(data, profile.kind)
        if not paths:
            raise InvalidInputError(f"--scale {name}: profile {profile.name!r} has no numbers "
                                    f"that '{name}' scales ({param.meaning})")
        for path in paths:
            moved = get_path(data, path) * value
            set_path(data, path, min(moved, 1.0) if param.fraction else moved)
            data["sources"][path] = (f"{profile.name}'s number scaled x{value:.3g} by '{name}'"
                                     + (f": {note}" if note else ""))
    if data.get("calibration"):
        data["calibration"] = {**data["calibration"], "log_residual_sd": None,
                               "scaled_after_fit": dict(scales)}
    return type(profile).model_validate(data)


def _params(profile, scales: Mapping[str, float]) -> dict:
    known = {p.name: p for p in CATALOGUE}
    out = {}
    for name, value in scales.items():
        if "@" in name:
            param = dtype_param(name.split("@", 1)[1])
        elif name in known:
            param = known[name]
        else:
            raise InvalidInputError(f"--scale {name}: unknown parameter; known: "
                                    f"{', '.join(known)}, or compute@DTYPE")
        if param.gpu_only and profile.kind != "gpu":
            raise InvalidInputError(f"--scale {name}: applies to GPU profiles only, "
                                    f"and {profile.name!r} is a CPU profile")
        if not isinstance(value, (int, float)) or not value > 0 or value == float("inf"):
            raise InvalidInputError(f"--scale {name}={value}: a scale must be a positive, finite number")
        out[name] = param
    return out


def parse_scales(items: Iterable[str]) -> dict[str, float]:
    """``["dispatch=1.66", "compute=0.9"]`` -> ``{"dispatch": 1.66, "compute": 0.9}``."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise InvalidInputError(f"--scale {item!r}: expected NAME=FACTOR, e.g. dispatch=1.5")
        try:
            value = float(text)
        except ValueError:
            raise InvalidInputError(f"--scale {item!r}: {text.strip()!r} is not a number") from None
        if name in out:
            raise InvalidInputError(f"--scale {name}: given twice")
        out[name] = value
    return out
