"""Find, read and validate hardware profiles (shipped ones and users' own files)."""

from __future__ import annotations

import difflib
import fnmatch
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from ..errors import HardwareProfileError, UnknownHardwareError
from .schema import CpuProfile, GpuProfile, HardwareProfile

_ADAPTER: TypeAdapter = TypeAdapter(HardwareProfile)
PROFILE_SUFFIXES = (".yaml", ".yml")


def _shipped_dir():
    """The installed ``netcut.hwmodels`` package, or ``hwmodels/`` of a source checkout."""
    try:
        return resources.files("netcut.hwmodels")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "hwmodels"


def list_hardware(pattern: str = "*") -> list[str]:
    """Names of the shipped profiles matching a shell-style ``pattern``."""
    names = [
        entry.name.rsplit(".", 1)[0]
        for entry in _shipped_dir().iterdir()
        if entry.name.endswith(PROFILE_SUFFIXES) and not entry.name.startswith("_")
    ]
    return sorted(n for n in names if fnmatch.fnmatch(n, pattern))


def resolve_profile_path(name_or_path: str | Path):
    """The file behind a profile name or path; unknown names suggest close ones."""
    text = str(name_or_path)
    as_path = Path(text).expanduser()
    if as_path.suffix in PROFILE_SUFFIXES or "/" in text or as_path.exists():
        if not as_path.is_file():
            raise UnknownHardwareError(f"hardware profile file not found: {text}")
        return as_path
    for suffix in PROFILE_SUFFIXES:
        entry = _shipped_dir() / f"{text}{suffix}"
        if entry.is_file():
            return entry
    known = list_hardware()
    close = difflib.get_close_matches(text, known, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UnknownHardwareError(
        f"unknown hardware {text!r}{hint} (`netcut hw list` shows all {len(known)})"
    )


def load_hardware(name_or_path: str | Path, **overrides: Any) -> GpuProfile | CpuProfile:
    """Load a shipped profile by name, or a user's YAML file by path.

    ``overrides`` change fields after validation; ``cores=N`` runs a CPU profile
    with N threads (``load_hardware("xeon-emr-16c", cores=4)``).
    """
    if isinstance(name_or_path, (GpuProfile, CpuProfile)):
        profile = name_or_path
    else:
        path = resolve_profile_path(name_or_path)
        profile = parse_profile(path.read_text(encoding="utf-8"), origin=str(path))
    return apply_overrides(profile, **overrides) if overrides else profile


def parse_profile(text: str, origin: str) -> GpuProfile | CpuProfile:
    """Validate YAML text into a profile; errors name ``origin``, field, value, rule."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise HardwareProfileError(f"{origin}{where}: not valid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise HardwareProfileError(
            f"{origin}: a profile must be a YAML mapping, got {type(data).__name__}"
        )
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise HardwareProfileError(format_validation_error(exc, origin)) from None


def format_validation_error(exc: ValidationError, origin: str) -> str:
    """One line per problem: ``file: field: value: what is allowed``."""
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        if loc and loc[0] in ("gpu", "cpu"):  # the discriminated-union tag
            loc = loc[1:]
        field = ".".join(loc) or "(top level)"
        msg = err["msg"]
        if err["type"] == "union_tag_invalid" or err["type"] == "union_tag_not_found":
            field, msg = "kind", "must be 'gpu' or 'cpu'"
        if err["type"] == "literal_error" and "expected" in err.get("ctx", {}):
            msg = f"allowed: {err['ctx']['expected']}"
        value = err.get("input")
        shown = "" if isinstance(value, (dict, list)) or value is None else f" = {value!r}"
        lines.append(f"{origin}: {field}{shown}: {msg}")
    return "\n".join(lines)


def apply_overrides(profile: GpuProfile | CpuProfile, **overrides: Any) -> GpuProfile | CpuProfile:
    data = profile.model_dump()
    for key, value in overrides.items():
        if value is None:
            continue
        if key in ("cores", "threads"):
            if profile.kind != "cpu":
                raise HardwareProfileError(
                    f"{profile.name}: a thread override ({key}={value}) applies to CPU profiles only"
                )
            limit = profile.compute.max_cores
            if int(value) < 1 or (limit is not None and int(value) > limit):
                raise HardwareProfileError(
                    f"{profile.name}: {key}={value} is outside 1..{limit or 'any'}"
                )
            data["compute"]["cores"] = int(value)
        elif key == "default_mode":
            data["default_mode"] = value
        else:
            raise HardwareProfileError(
                f"{profile.name}: unknown override {key!r} (allowed: cores, default_mode)"
            )
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise HardwareProfileError(format_validation_error(exc, profile.name)) from None
