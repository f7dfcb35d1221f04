"""The typed, validated form of a hardware YAML profile (schema version 1).

A profile describes one device well enough to price every row of a LayerTable:
peak compute per unit and dtype, memory bandwidth, the fraction of peak each op
class reaches, and the fixed costs of each execution mode. ``docs/hardware-schema.md``
explains every field; ``sources`` must cite where every number came from.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from ..dtypes import DTYPE_BYTES
from ..opclasses import EFFICIENCY_SUBCLASSES, OP_CLASS_FALLBACK, OP_CLASSES

SCHEMA_VERSION = 1
#: resident threads per SM on every NVIDIA GPU since Maxwell except Turing (1024)
#: and the GA10x consumer parts (1536); CUDA C Programming Guide, "Compute
#: Capabilities" table. Used only when a profile gives no saturation_outputs.
THREADS_PER_SM = 2048

Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(gt=0, le=1)]
DtypeName = Literal["float32", "float16", "bfloat16", "int8"]
OpClassOrDefault = Literal[OP_CLASSES + ("default",)]  # type: ignore[valid-type]
#: efficiency keys: the op classes, their efficiency-only subclasses and ``default``
#: the activations a CPU profile may price per element (op kinds of netcut's tables)
ActivationKind = Literal["relu", "relu6", "hardtanh", "leaky_relu", "sigmoid", "tanh", "silu", "gelu",
                         "hardswish", "hardsigmoid", "mish"]
EfficiencyKey = Literal[OP_CLASSES + tuple(EFFICIENCY_SUBCLASSES) + ("default",)]  # type: ignore[valid-type]
ModeName = Literal["eager", "graph", "fused"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DtypeEfficiency(_Strict):
    """Per-dtype overrides: e.g. fp16 convs reach a different fraction of the
    tensor-core peak than TF32 convs, and fp16 memory-bound kernels are not twice
    as fast as fp32 ones. Unlisted classes fall back to the dtype-free entries."""

    compute: dict[EfficiencyKey, Fraction] = Field(default_factory=dict)
    memory: dict[OpClassOrDefault, Fraction] = Field(default_factory=dict)


class Efficiency(_Strict):
    """Fraction of peak reached, per op class; ``default`` covers unlisted classes."""

    compute: dict[EfficiencyKey, Fraction]
    memory: dict[OpClassOrDefault, Fraction]
    by_dtype: dict[DtypeName, DtypeEfficiency] = Field(default_factory=dict)

    def fraction(self, kind: str, op_class: str, dtype: str) -> float:
        """The efficiency of ``op_class`` at ``dtype``: a dtype override, else the class
        entry, else the same for the class it falls back to (``pool_max`` -> ``pool``),
        else the dtype's ``default`` override, else ``default``."""
        base: dict = getattr(self, kind)
        override = getattr(self.by_dtype[dtype], kind) if dtype in self.by_dtype else {}
        parent = OP_CLASS_FALLBACK.get(op_class) or EFFICIENCY_SUBCLASSES.get(op_class)
        keys = (op_class,) if parent is None else (op_class, parent)
        for key in keys:
            for table in (override, base):
                if key in table:
                    return table[key]
        return override.get("default", base["default"])

    @field_validator("compute", "memory")
    @classmethod
    def _needs_default(cls, value: dict) -> dict:
        if "default" not in value:
            raise ValueError("needs a 'default' entry (used for every op class not listed)")
        return value


class InNetwork(_Strict):
    """CPU eager: what an op pays inside a network beyond its time alone, in microseconds
    per call and per MB (see ``netcut.estimate.in_network``; measured at the profile's
    ``compute.cores`` threads and not rescaled with them). 0 = none."""

    conv_us: NonNegative = 0.0
    grouped_conv_us: NonNegative = 0.0
    after_conv_us: NonNegative = 0.0
    other_us: NonNegative = 0.0
    weights_us_per_mb: NonNegative = 0.0
    after_conv_us_per_mb: NonNegative = 0.0
    other_us_per_mb: NonNegative = 0.0


class ModeOverhead(_Strict):
    """Fixed costs of one execution mode, in microseconds.

    ``dispatch_us``: host time to issue one op (Python + framework + driver), per op
    class; ops that launch no kernel (views) are priced with the ``view`` entry.
    ``kernel_us``: device-side fixed time of every kernel (launch latency, tail).
    ``launch_us``: once per forward pass (a CUDA-graph replay, a runtime call).
    ``enqueue_us``: host time of every kernel an op launches after its first (the
    layout transforms cuDNN runs around an fp16 convolution are two more
    ``cudaLaunchKernel`` calls); 0 = not modelled.
    ``onednn_conv_us`` (CPU eager): fixed cost of a dense conv PyTorch hands to oneDNN
    (see ``netcut.estimate.roofline.onednn_convs``) in place of ``dispatch_us.conv``,
    which then prices the im2col + GEMM path only; None = one cost for both paths.
    ``in_network`` (CPU eager): per-call and per-MB costs ops pay inside a network beyond
    their time alone (``InNetwork``); None = none.
    """

    dispatch_us: dict[OpClassOrDefault, NonNegative]
    kernel_us: NonNegative = 0.0
    launch_us: NonNegative = 0.0
    enqueue_us: NonNegative = 0.0
    onednn_conv_us: NonNegative | None = None
    in_network: InNetwork | None = None
    kernel_us_by_dtype: dict[DtypeName, NonNegative] = Field(
        default_factory=dict, description="kernel_us where a dtype differs (e.g. fp16 layout kernels)"
    )

    @field_validator("dispatch_us")
    @classmethod
    def _needs_default(cls, value: dict) -> dict:
        if "default" not in value:
            raise ValueError("needs a 'default' entry (used for every op class not listed)")
        return value


class Memory(_Strict):
    bandwidth_gbs: Positive = Field(description="peak DRAM bandwidth, GB/s (10^9 bytes)")
    capacity_gb: Positive | None = None
    l2_cache_mib: Positive | None = Field(None, description="GPU: whole L2; CPU: per core")
    l3_cache_mib: Positive | None = None
    bandwidth_gbs_per_core: Positive | None = Field(
        None, description="CPU only: bandwidth one core can draw (caps scaling with threads)"
    )
    cache_bandwidth_gbs_per_core: Positive | None = Field(
        None, description="CPU only: bandwidth one core gets from its caches; traffic that fits "
        "in the last-level cache is priced at it (see docs/hardware-schema.md#cpu-caches)"
    )
    usable_cache_mib: Positive | None = Field(
        None, description="CPU only: the weights (MiB) a network can count on staying in the "
        "last-level cache from one pass to the next, where less than l3_cache_mib (a VM's share "
        "of a shared L3; scripts/cpu_microbench.py --weight-stream-scan). A network with more "
        "streams its weights from DRAM, after each op's compute (docs/hardware-schema.md#cpu-"
        "caches). None = l3_cache_mib, weights inside the roofline"
    )
    network_bandwidth_gbs_per_core: Positive | None = Field(
        None, description="CPU only: inside a network every op's traffic (inputs, weights, "
        "outputs) moves once more at this bandwidth, added to its roofline time; single ops "
        "timed alone do not pay it (see docs/hardware-schema.md#cpu-caches). None = no such term"
    )


class _ComputeBase(_Strict):
    use_unit: dict[OpClassOrDefault, dict[DtypeName, str]] = Field(
        default_factory=dict,
        description="which unit runs an op class at a dtype; unlisted -> default_unit",
    )
    default_unit: str

    def _check_units(self, units: dict[str, dict[str, float]]) -> None:
        if self.default_unit not in units:
            raise ValueError(
                f"default_unit {self.default_unit!r} is not one of the units {sorted(units)}"
            )
        for op_class, per_dtype in self.use_unit.items():
            for dtype, unit in per_dtype.items():
                if unit not in units:
                    raise ValueError(
                        f"use_unit.{op_class}.{dtype} names unit {unit!r}; "
                        f"defined units: {sorted(units)}"
                    )


class GpuCompute(_ComputeBase):
    sms: Annotated[int, Field(gt=0)]
    saturation_outputs: Positive | None = Field(
        None,
        description="output elements a matrix kernel needs to keep every SM busy; a kernel "
        "with n outputs runs (1 + saturation_outputs / n) times slower. None = sms x 2048 "
        "(resident threads per SM)",
    )
    clock_mhz: dict[Literal["base", "boost"], Positive] = Field(default_factory=dict)
    peak_tflops: dict[str, dict[DtypeName, Positive]] = Field(
        description="dense peak, TFLOP/s for the whole device, per unit and dtype"
    )

    @model_validator(mode="after")
    def _units(self) -> "GpuCompute":
        self._check_units(self.peak_tflops)
        return self


class CpuCompute(_ComputeBase):
    cores: Annotated[int, Field(gt=0)] = Field(description="cores (vCPUs) used by default")
    max_cores: Annotated[int, Field(gt=0)] | None = Field(
        None, description="cores the device has; a thread override may not exceed it"
    )
    clock_ghz: dict[Literal["base", "boost"], Positive] = Field(default_factory=dict)
    isa: list[str] = Field(default_factory=list, description="e.g. avx2, avx512, amx, neon")
    peak_gflops_per_core: dict[str, dict[DtypeName, Positive]] = Field(
        description="dense peak of ONE core, GFLOP/s, per unit and dtype"
    )
    thread_efficiency: Fraction = Field(
        0.85, description="parallel efficiency of a multi-threaded op (1 = linear scaling)"
    )
    saturation_outputs_per_core: Positive | None = Field(
        None, description="outputs per thread a dense or grouped conv needs to reach its listed "
        "efficiency: with n outputs it runs (1 + cores x this / n) times slower (fitted to a "
        "micro-benchmark scan, scripts/cpu_microbench.py --occupancy-scan). None = no such term"
    )
    pool_input_ns_per_core: Positive | None = Field(
        None, description="max-pooling: ns one core spends per input element on top of the "
        "window elements the pool_max efficiency prices (scalar code reads every element; "
        "overlapping windows share it, so a 3x3 pool at stride 1 costs less per window "
        "element than at stride 2); fitted to scripts/cpu_microbench.py --pool-scan. None = "
        "window elements alone"
    )
    depthwise_input_ns_per_core: Positive | None = Field(
        None, description="depthwise convs: ns one core spends per input element, on top of "
        "their FLOPs at the conv_depthwise efficiency (the kernel moves activations far below "
        "cache speed and does ~9-25 FLOPs per element); fitted to scripts/cpu_microbench.py "
        "--depthwise-scan. None = FLOPs alone"
    )
    depthwise_output_ns_per_core: Positive | None = Field(
        None, description="depthwise convs: ns one core spends per output element (the same "
        "fit as depthwise_input_ns_per_core). None = none"
    )
    pointwise_input_ns_per_core: Positive | None = Field(
        None, description="1x1 dense convs PyTorch hands to oneDNN: ns one core spends per "
        "input element, on top of their FLOPs at the conv_pointwise efficiency (oneDNN "
        "reorders the input to its blocked layout and the output back on every call, and a "
        "1x1 conv does few FLOPs per element); fitted to scripts/cpu_microbench.py "
        "--pointwise-scan. None = FLOPs alone, with the occupancy term"
    )
    pointwise_output_ns_per_core: Positive | None = Field(
        None, description="1x1 dense convs on oneDNN: ns one core spends per output element "
        "(the same fit as pointwise_input_ns_per_core). None = none"
    )
    channel_block: Annotated[int, Field(gt=0)] | None = Field(
        None, description="channels the conv library packs per vector block (16 fp32 lanes of "
        "AVX-512 in oneDNN's blocked layouts): a conv's FLOPs are priced with its channels "
        "rounded up to a multiple of it (see docs/hardware-schema.md#channel-blocks). None = no "
        "rounding"
    )
    misaligned_factor: dict[Literal["conv", "conv_pointwise", "conv_depthwise"], Positive] | None = Field(
        None, description="how many times longer a conv with channels off a multiple of "
        "channel_block runs than the same conv at the next multiple (which the rounding "
        "prices), per kind: dense kxk, 1x1, depthwise (scripts/cpu_microbench.py "
        "--alignment-scan). None = the rounding alone"
    )
    misaligned_ns_per_element_per_core: dict[Literal["conv_pointwise", "conv_depthwise"], NonNegative] | None = Field(
        None, description="for these kinds, a conv off the channel block costs this much more "
        "per element it reads and writes than the padded conv, in place of misaligned_factor "
        "(ns with one core; scripts/cpu_microbench.py --alignment-scan). None = the factor"
    )

    activation_ns_per_element_per_core: dict[ActivationKind, Positive] | None = Field(
        None, description="activations whose math, not their traffic, sets their time "
        "(erf, exp, divisions): ns one core spends per output element, by op kind (gelu, "
        "silu, sigmoid...), in place of their nominal FLOPs at the elementwise efficiency "
        "(scripts/cpu_microbench.py --activation-scan). None = FLOPs per element"
    )

    @model_validator(mode="after")
    def _units(self) -> "CpuCompute":
        self._check_units(self.peak_gflops_per_core)
        if self.max_cores is not None and self.cores > self.max_cores:
            raise ValueError(f"cores={self.cores} exceeds max_cores={self.max_cores}")
        if (self.misaligned_factor or self.misaligned_ns_per_element_per_core) and not self.channel_block:
            raise ValueError("misaligned_factor and misaligned_ns_per_element_per_core need "
                             "channel_block (the multiple they are off)")
        return self


class _ProfileBase(_Strict):
    schema_version: Literal[1]
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")]
    description: str
    vendor: str | None = None
    default_mode: ModeName = "eager"
    memory: Memory
    efficiency: Efficiency
    overhead: dict[ModeName, ModeOverhead]
    host: str | None = Field(None, description="the host CPU that dispatches ops")
    sources: dict[str, str] = Field(description="field path (prefix) -> where the number came from")
    calibration: dict | None = Field(
        None, description="written by netcut calibrate: fitted from what, with which error"
    )
    #: per-(dtype, mode) numpy vectors derived from the fields; a profile is frozen,
    #: so they never go stale, and pricing many tables skips rebuilding them
    _vectors: dict = PrivateAttr(default_factory=dict)

    def model_copy(self, *, update=None, deep: bool = False):
        """A copy with its own (empty) vector cache: ``update`` may change any number."""
        copied = super().model_copy(update=update, deep=deep)
        copied._vectors = {}
        return copied

    @model_validator(mode="after")
    def _modes_and_sources(self) -> "_ProfileBase":
        if self.default_mode not in self.overhead:
            raise ValueError(
                f"default_mode {self.default_mode!r} has no entry under overhead "
                f"(present: {sorted(self.overhead)})"
            )
        missing = [p for p in numeric_paths(self) if not _has_source(p, self.sources)]
        if missing:
            raise ValueError(
                "every number needs a source; no 'sources' entry covers: " + ", ".join(missing)
            )
        return self

    def peak_flops(self, op_class: str, dtype: str) -> float:
        """Peak FLOP/s available to ``op_class`` at ``dtype`` (before efficiency)."""
        raise NotImplementedError

    def bandwidth_bytes_per_s(self) -> float:
        raise NotImplementedError

    def unit_for(self, op_class: str, dtype: str) -> str:
        per_dtype = self.compute.use_unit.get(op_class) or self.compute.use_unit.get("default") or {}
        return per_dtype.get(dtype, self.compute.default_unit)


class GpuProfile(_ProfileBase):
    kind: Literal["gpu"]
    compute: GpuCompute

    def peak_flops(self, op_class: str, dtype: str) -> float:
        unit = self.unit_for(op_class, dtype)
        table = self.compute.peak_tflops[unit]
        if dtype not in table:
            raise KeyError(f"unit {unit!r} lists no peak for {dtype}")
        return table[dtype] * 1e12

    def bandwidth_bytes_per_s(self) -> float:
        return self.memory.bandwidth_gbs * 1e9

    def saturation_outputs(self) -> float:
        """Outputs one kernel needs to fill the GPU (see ``GpuCompute.saturation_outputs``)."""
        given = self.compute.saturation_outputs
        return given if given is not None else self.compute.sms * THREADS_PER_SM

    def dtypes(self) -> list[str]:
        return sorted({d for t in self.compute.peak_tflops.values() for d in t})


class CpuProfile(_ProfileBase):
    kind: Literal["cpu"]
    compute: CpuCompute

    def peak_flops(self, op_class: str, dtype: str) -> float:
        unit = self.unit_for(op_class, dtype)
        table = self.compute.peak_gflops_per_core[unit]
        if dtype not in table:
            raise KeyError(f"unit {unit!r} lists no peak for {dtype}")
        return table[dtype] * 1e9 * self.effective_cores()

    def effective_cores(self) -> float:
        """Cores' worth of throughput from ``cores`` threads (Amdahl-like discount)."""
        n = self.compute.cores
        return 1.0 + (n - 1) * self.compute.thread_efficiency

    def bandwidth_bytes_per_s(self) -> float:
        total = self.memory.bandwidth_gbs
        per_core = self.memory.bandwidth_gbs_per_core
        if per_core is not None:
            total = min(total, per_core * self.compute.cores)
        return total * 1e9

    def cache_bandwidth_bytes_per_s(self) -> float:
        """Bandwidth of cache-resident traffic (0: the profile prices everything at DRAM's)."""
        per_core = self.memory.cache_bandwidth_gbs_per_core
        return per_core * self.compute.cores * 1e9 if per_core else 0.0

    def pool_input_s(self) -> float:
        """Seconds per input element a max-pool adds with ``cores`` threads (0: none)."""
        per_core = self.compute.pool_input_ns_per_core
        return per_core * 1e-9 / self.effective_cores() if per_core else 0.0

    def depthwise_element_s(self) -> tuple[float, float]:
        """Seconds per input and per output element a depthwise conv adds with ``cores``
        threads ((0, 0): none)."""
        scale = 1e-9 / self.effective_cores()
        return ((self.compute.depthwise_input_ns_per_core or 0.0) * scale,
                (self.compute.depthwise_output_ns_per_core or 0.0) * scale)

    def pointwise_element_s(self) -> tuple[float, float]:
        """Seconds per input and per output element a 1x1 oneDNN conv adds with ``cores``
        threads ((0, 0): none)."""
        scale = 1e-9 / self.effective_cores()
        return ((self.compute.pointwise_input_ns_per_core or 0.0) * scale,
                (self.compute.pointwise_output_ns_per_core or 0.0) * scale)

    def network_bandwidth_bytes_per_s(self) -> float:
        """In-network traffic's extra bandwidth (0: no such term)."""
        per_core = self.memory.network_bandwidth_gbs_per_core
        return per_core * self.compute.cores * 1e9 if per_core else 0.0

    def cache_bytes(self) -> float:
        """The last-level cache: the usable share if given, else L3, else every core's L2
        together (bytes)."""
        if self.memory.usable_cache_mib:
            return self.memory.usable_cache_mib * 2**20
        if self.memory.l3_cache_mib:
            return self.memory.l3_cache_mib * 2**20
        return (self.memory.l2_cache_mib or 0.0) * self.compute.max_cores * 2**20

    def saturation_outputs(self) -> float:
        """Outputs a conv needs to run at its listed efficiency with ``cores`` threads
        (each thread needs its share); 0 = no occupancy term."""
        per_core = self.compute.saturation_outputs_per_core
        return per_core * self.compute.cores if per_core else 0.0

    def dtypes(self) -> list[str]:
        return sorted({d for t in self.compute.peak_gflops_per_core.values() for d in t})


HardwareProfile = Annotated[Union[GpuProfile, CpuProfile], Field(discriminator="kind")]


def numeric_paths(model: BaseModel, prefix: str = "") -> list[str]:
    """Dotted paths of every number in a profile (what ``sources`` must cover)."""
    out: list[str] = []
    skip = {"schema_version", "sources", "calibration"}
    for name in type(model).model_fields:
        if name in skip:
            continue
        _collect(getattr(model, name), f"{prefix}{name}", out)
    return out


def _collect(value: object, path: str, out: list[str]) -> None:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, (int, float)):
        out.append(path)
    elif isinstance(value, BaseModel):
        out.extend(numeric_paths(value, path + "."))
    elif isinstance(value, dict):
        for key, item in value.items():
            _collect(item, f"{path}.{key}", out)


def _has_source(path: str, sources: dict[str, str]) -> bool:
    parts = path.split(".")
    return any(".".join(parts[:i]) in sources for i in range(1, len(parts) + 1))


ALLOWED_DTYPES = tuple(DTYPE_BYTES)
