"""The free parameters a calibration may fit, in the order few-shot data can afford them.

Each parameter is a *scale* on a group of profile numbers (1 = the base profile).
The order puts first the two terms every latency has: throughput (``compute``) and
a fixed cost per op (``dispatch`` on an eager host, ``kernel`` on the device), so
two or three measured networks fit the classic "time = a x work + b x ops" model.
Scaling groups instead of setting single numbers keeps what the datasheet and the
defaults know (e.g. that depthwise convs reach a smaller share of peak than dense
ones) and lets three measured networks move what three numbers can explain.

``LINEAR`` parameters add time in proportion to their value on a synchronous
schedule (a CPU, a CUDA graph): there the fit solves them by weighted least squares
for every guess of the others, and reports them from statsmodels with intervals.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidInputError
from .edit import matching


@dataclass(frozen=True)
class FreeParam:
    name: str
    patterns: tuple[str, ...]  # dotted paths (shell patterns) of the numbers it scales
    meaning: str
    fraction: bool = False  # the numbers are efficiencies: the scale keeps them <= 1
    gpu_only: bool = False
    eager_only: bool = False  # only eager rows have host dispatch
    linear: bool = False  # time is linear in it on a synchronous schedule
    cpu_excludes: tuple[str, ...] = ()  # patterns it leaves alone on a CPU profile

    def paths(self, data: dict, kind: str) -> list[str]:
        """The dotted paths of ``data`` (a spelled-out profile of ``kind``) it scales."""
        found = matching(data, self.patterns)
        if kind == "cpu" and self.cpu_excludes:
            dropped = set(matching(data, self.cpu_excludes))
            found = [path for path in found if path not in dropped]
        return found


def _eff(kind: str, *classes: str) -> tuple[str, ...]:
    names = classes or ("*",)
    return tuple(f"efficiency.{kind}.{c}" for c in names) + tuple(
        f"efficiency.by_dtype.*.{kind}.{c}" for c in names)


#: On a CPU, PyTorch's grouped and depthwise convolutions cost a fixed ~55 us per call
#: on the Zen 4 guest (a 1x16x8x8 input; calibration/data/cpu-epyc-genoa-2c-micro-keepmem.json,
#: fixed_us), 5x a dense conv's: the library's setup for those kernels, measured on the
#: op. ``dispatch`` stands for what every op costs beyond the profile inside a network,
#: which does not grow with that setup: scaled with it, the 5-shot Zen 4 fits priced
#: RegNet's and the MobileNets' grouped/depthwise convs at 3-5x their setup. ``conv_dispatch``
#: still scales them, and oneDNN's fixed cost per dense conv (``onednn_conv_us``), the
#: same library's setup.
CPU_CONV_SETUP = ("overhead.eager.dispatch_us.conv_grouped", "overhead.eager.dispatch_us.conv_depthwise",
                  "overhead.eager.onednn_conv_us")

CATALOGUE: tuple[FreeParam, ...] = (
    FreeParam("compute", _eff("compute"), "every compute efficiency together", fraction=True),
    FreeParam("dispatch", ("overhead.eager.dispatch_us.*", "overhead.eager.enqueue_us"),
              "host time to issue one op and its extra kernels (every op class together; on "
              "a CPU, not the grouped and depthwise convs' own setup cost)",
              eager_only=True, linear=True, cpu_excludes=CPU_CONV_SETUP),
    FreeParam("kernel", ("overhead.*.kernel_us", "overhead.*.kernel_us_by_dtype.*"),
              "fixed device time per kernel", gpu_only=True, linear=True),
    # before ``memory``: both price traffic, so the rows cannot tell them apart and the
    # first one offered is fitted; ``memory`` cannot go past an efficiency of 1
    FreeParam("network", ("memory.network_bandwidth_gbs_per_core",),
              "the bandwidth an op's traffic moves at again inside a network (CPU profiles "
              "that list it)"),
    FreeParam("in_network", ("overhead.eager.in_network.*",),
              "what ops pay inside a network beyond their time alone, per call and per MB "
              "(CPU profiles that list it)", eager_only=True, linear=True),
    FreeParam("memory", _eff("memory"), "memory-bandwidth efficiency", fraction=True),
    FreeParam("conv", _eff("compute", "conv", "conv_pointwise"), "dense convolutions' share of peak",
              fraction=True),
    FreeParam("conv_dispatch", tuple(f"overhead.eager.dispatch_us.{c}" for c in
                                     ("conv", "conv_grouped", "conv_depthwise"))
              + ("overhead.eager.onednn_conv_us",),
              "host time to issue a convolution, beyond the other ops' (CPU libraries "
              "set up each conv call)", eager_only=True, linear=True),
    FreeParam("pool", _eff("memory", "pool", "pool_max"), "pooling kernels' share of memory bandwidth",
              fraction=True),
    FreeParam("depthwise", _eff("compute", "conv_depthwise"),
              "depthwise convolutions' share of peak", fraction=True),
    FreeParam("grouped", _eff("compute", "conv_grouped"),
              "grouped convolutions' share of peak (ResNeXt, RegNet)", fraction=True),
    FreeParam("matmul", _eff("compute", "matmul", "attention"),
              "matrix multiplies' and attention's share of peak", fraction=True),
    FreeParam("launch", ("overhead.*.launch_us",), "fixed time per forward pass", linear=True),
    FreeParam("saturation", ("compute.saturation_outputs",),
              "outputs a convolution needs to fill the GPU", gpu_only=True),
)
#: a per-dtype compute scale, offered when the rows hold more than one dtype
DTYPE_COMPUTE = "compute@{dtype}"


def dtype_param(dtype: str) -> FreeParam:
    return FreeParam(DTYPE_COMPUTE.format(dtype=dtype), (f"efficiency.by_dtype.{dtype}.compute.*",),
                     f"compute efficiencies at {dtype} (tensor cores vs the rest)", fraction=True)


def candidates(kind: str, modes: set[str], dtypes: list[str]) -> list[FreeParam]:
    """The catalogue in priority order, without what cannot apply to these rows."""
    out = []
    for p in CATALOGUE:
        if p.gpu_only and kind != "gpu":
            continue
        if p.eager_only and "eager" not in modes:
            continue
        out.append(p)
        if p.name == "memory" and len(dtypes) > 1:
            out.extend(dtype_param(d) for d in dtypes[1:])
    return out


def by_names(names: list[str], kind: str, modes: set[str], dtypes: list[str]) -> list[FreeParam]:
    """The parameters a user named (``--params compute,memory``), checked."""
    known = {p.name: p for p in CATALOGUE} | {dtype_param(d).name: dtype_param(d) for d in dtypes}
    chosen = []
    for name in names:
        if name not in known:
            raise InvalidInputError(
                f"unknown calibration parameter {name!r}; known: {', '.join(known)}")
        p = known[name]
        if p.gpu_only and kind != "gpu":
            raise InvalidInputError(f"calibration parameter {name!r} applies to GPU profiles only")
        if p.eager_only and "eager" not in modes:
            raise InvalidInputError(f"calibration parameter {name!r} needs eager-mode measurements")
        chosen.append(p)
    return chosen
