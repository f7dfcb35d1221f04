"""Predicted against measured: row prediction, the H100 fit, the validation report."""
