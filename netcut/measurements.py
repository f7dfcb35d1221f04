"""Measured latencies: one versioned JSON schema for every file in calibration/data.

A measurement file (``schema: netcut-measurements``, ``version: 1``) holds the
environment it was measured in and a list of rows. A row is one network (whole,
or trimmed after ``cut``) at one batch size and dtype, with the median, minimum
and p90 over ``n`` timed runs. ``docs/measurement-schema.md`` documents it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import MeasurementError

SCHEMA_NAME = "netcut-measurements"
SCHEMA_VERSION = 1


class Cut(BaseModel):
    """Where a trimmed network was cut: after the block ``last_block``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    last_block: str
    k: int | None = Field(None, description="blocks kept (1-based)")
    n_blocks: int | None = None
    channels: int | None = None
    spatial: tuple[int, ...] | None = None
    head: Literal["avgpool-linear"] = "avgpool-linear"
    num_classes: int = 10


class Row(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    model: str
    input: tuple[int, ...] = Field(description="per-sample shape, e.g. [3, 224, 224]")
    batch: int = Field(gt=0)
    dtype: Literal["float32", "float16", "bfloat16", "int8"]
    mode: Literal["eager", "graph", "fused"]
    cut: Cut | None = None
    median_ms: float = Field(gt=0)
    min_ms: float | None = Field(None, gt=0)
    p90_ms: float | None = Field(None, gt=0)
    n: int | None = Field(None, gt=0)

    @field_validator("median_ms", "min_ms", "p90_ms")
    @classmethod
    def _finite(cls, value):
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number of milliseconds")
        return value

    def key(self) -> tuple:
        return (self.model, self.input, self.batch, self.dtype, self.mode,
                self.cut.last_block if self.cut else None)


class MeasurementFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    schema_: Literal["netcut-measurements"] = Field(alias="schema")
    version: int
    device: str = Field(description="what was measured, e.g. 'NVIDIA H100 80GB HBM3'")
    profile_hint: str | None = Field(None, description="the closest shipped profile")
    source: str
    protocol: str
    environment: dict
    rows: list[Row]

    @field_validator("version")
    @classmethod
    def _version(cls, value):
        if value != SCHEMA_VERSION:
            raise ValueError(f"unknown schema version {value}; this netcut reads version {SCHEMA_VERSION}")
        return value


def load_measurements(path: str | Path) -> MeasurementFile:
    """Read and validate a measurement file; errors name the file and the row."""
    path = Path(path)
    parsed = _validate(MeasurementFile, _read_json(path, SCHEMA_NAME), path)
    _no_duplicates(parsed.rows, path, lambda r: f"{r.model}, batch {r.batch}, {r.dtype}")
    return parsed


def _read_json(path: Path, schema: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MeasurementError(f"{path}: no such measurement file") from None
    except IsADirectoryError:
        raise MeasurementError(f"{path}: is a folder, not a measurement file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MeasurementError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("schema") != schema:
        raise MeasurementError(f"{path}: not a netcut measurement file (expected \"schema\": \"{schema}\")")
    return data


def _validate(model, data: dict, path: Path):
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = first["loc"]
        where = f"row {loc[1]}" if len(loc) > 1 and loc[0] == "rows" else ".".join(map(str, loc))
        field = ".".join(map(str, loc[2:])) if len(loc) > 2 and loc[0] == "rows" else ""
        value = first.get("input")
        shown = "" if isinstance(value, (dict, list)) else f" = {value!r}"
        raise MeasurementError(f"{path}: {where}{' ' + field if field else ''}{shown}: {first['msg']}") from None


def _no_duplicates(rows, path: Path, describe) -> None:
    seen: dict[tuple, int] = {}
    for i, row in enumerate(rows):
        if row.key() in seen:
            raise MeasurementError(f"{path}: row {i} duplicates row {seen[row.key()]} ({describe(row)})")
        seen[row.key()] = i


LAYER_SCHEMA_NAME = "netcut-layer-measurements"


class LayerRow(BaseModel):
    """One leaf module timed alone on the input it received in a real forward pass.

    ``call`` tells repeated calls of one module apart (a ResNet block calls its
    ``relu`` twice); files without it number the calls in the order they appear.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    model: str
    batch: int = Field(gt=0)
    dtype: Literal["float32", "float16", "bfloat16", "int8"]
    name: str = Field(description="qualified module name, e.g. layer1.0.conv1")
    call: int = Field(0, ge=0)
    type: str = Field(description="module class, e.g. Conv2d")
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...] | None = None
    median_ms: float = Field(gt=0)
    min_ms: float | None = Field(None, gt=0)
    p90_ms: float | None = Field(None, gt=0)
    n: int | None = Field(None, gt=0)

    _finite = field_validator("median_ms", "min_ms", "p90_ms")(Row._finite.__func__)

    def key(self) -> tuple:
        return (self.model, self.batch, self.dtype, self.name, self.call)


class LayerMeasurementFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    schema_: Literal["netcut-layer-measurements"] = Field(alias="schema")
    version: int
    device: str
    profile_hint: str | None = None
    source: str
    protocol: str
    environment: dict
    rows: list[LayerRow]

    _version = field_validator("version")(MeasurementFile._version.__func__)


def load_layer_measurements(path: str | Path) -> LayerMeasurementFile:
    """Read and validate a per-layer measurement file (``netcut measure --per-layer``)."""
    path = Path(path)
    data = _read_json(path, LAYER_SCHEMA_NAME)
    calls: dict[tuple, int] = {}
    for row in data.get("rows", []) if isinstance(data.get("rows"), list) else []:
        if isinstance(row, dict) and "call" not in row:
            key = (row.get("model"), row.get("batch"), row.get("dtype"), row.get("name"))
            row["call"] = calls[key] = calls.get(key, -1) + 1
    parsed = _validate(LayerMeasurementFile, data, path)
    _no_duplicates(parsed.rows, path, lambda r: f"{r.model} {r.name} call {r.call}, batch {r.batch}, {r.dtype}")
    return parsed


def shipped_measurements(name: str) -> Path:
    """Path of a measurement file shipped in ``netcut.calibration`` (``h100-eager``)."""
    from importlib import resources

    try:
        base = resources.files("netcut.calibration") / "data"
    except ModuleNotFoundError:
        base = Path(__file__).resolve().parents[1] / "calibration" / "data"
    return Path(str(base / f"{name}.json"))
