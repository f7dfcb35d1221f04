"""Shipped calibration data, installed as ``netcut.calibration``."""
