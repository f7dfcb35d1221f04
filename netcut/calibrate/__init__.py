"""Calibrating a hardware profile to measured runs (scikit-learn-style Calibrator)."""
