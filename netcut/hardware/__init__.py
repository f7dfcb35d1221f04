"""Hardware profiles: the YAML schema, and loading shipped or user files."""

from .loader import list_hardware, load_hardware, parse_profile, resolve_profile_path
from .schema import SCHEMA_VERSION, CpuProfile, GpuProfile

__all__ = [
    "SCHEMA_VERSION",
    "CpuProfile",
    "GpuProfile",
    "list_hardware",
    "load_hardware",
    "parse_profile",
    "resolve_profile_path",
]
