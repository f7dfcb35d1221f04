"""Calibrating a hardware profile to measured runs (scikit-learn-style Calibrator)."""

from .calibrator import CalibrationResults, Calibrator
from .params import CATALOGUE, FreeParam
from .scale import scale_profile

__all__ = ["CATALOGUE", "CalibrationResults", "Calibrator", "FreeParam", "scale_profile"]
