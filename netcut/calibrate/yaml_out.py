"""Write a calibrated profile as YAML that ``load_hardware`` reads back unchanged."""

from __future__ import annotations

import yaml


def profile_yaml(profile, header: str = "") -> str:
    """The profile as YAML (fields in schema order, no empty values), after ``header``
    written as comment lines."""
    data = profile.model_dump(mode="json", exclude_none=True)
    data = {k: v for k, v in data.items() if v not in ({}, [])}
    comment = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return comment + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
