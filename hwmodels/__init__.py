"""Shipped hardware profiles (YAML data), installed as ``netcut.hwmodels``."""
