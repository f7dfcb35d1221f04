"""Width configurations: how many channels of each group a sub-network keeps.

A width is given as

- a number ``r`` in (0, 1]: *uniform*, every sliceable group keeps ``r`` of its
  channels;
- a mapping ``{pattern: r}``: *non-uniform*, per group; patterns are shell-style
  (``fnmatch``) matched against group names (a group is named after its first
  producer conv, e.g. ``layer3.0.conv1`` or ``features.4.block.0.0``); the first
  pattern that matches a group decides, unmatched groups keep all their channels.
  ``"*"`` as the last key sets a default.

A group keeps ``round(r * C)`` channels (at least one), rounded to a multiple of
``divisor`` when one is given (hardware-friendly sizes). Two widths that keep
the same channels everywhere are one configuration.
"""

from __future__ import annotations

import difflib
import fnmatch
import math
from dataclasses import dataclass
from typing import Mapping, Sequence

from ..errors import InvalidInputError
from .channels import ChannelGroup

__all__ = ["WidthConfig", "check_ratio", "parse_widths", "requested"]


@dataclass(frozen=True)
class WidthConfig:
    """One width: ``channels[g]`` channels of group ``g`` (``ratios[g]`` asked)."""

    label: str
    channels: tuple[int, ...]
    ratios: tuple[float, ...]
    uniform: float | None  # the ratio when uniform

    @property
    def is_full(self) -> bool:
        return all(r == 1.0 for r in self.ratios)

    def fraction(self, groups: Sequence[ChannelGroup]) -> float:
        """Share of the sliceable channels kept (1.0 with no groups)."""
        total = sum(g.channels for g in groups)
        return sum(self.channels) / total if total else 1.0

    def to_dict(self) -> dict:
        return {"label": self.label, "uniform": self.uniform, "channels": list(self.channels),
                "ratios": list(self.ratios)}


def check_ratio(value, where: str) -> float:
    """``value`` as a width ratio in (0, 1]; a clear error naming ``where`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInputError(f"width ratio {value!r} for {where} is not a number")
    if not 0.0 < float(value) <= 1.0:
        raise InvalidInputError(f"width ratio {value!r} for {where} is outside (0, 1]: "
                                "a ratio is the share of the layer's channels kept")
    return float(value)


def _as_list(widths) -> list:
    if widths is None:
        return [1.0]
    if isinstance(widths, (int, float, Mapping)) and not isinstance(widths, bool):
        return [widths]
    if isinstance(widths, str) or not isinstance(widths, Sequence) or not widths:
        raise InvalidInputError(f"widths must be ratios in (0, 1] or mappings of layer "
                                f"patterns to ratios, got {widths!r}")
    return list(widths)


def requested(widths) -> bool:
    """Whether ``widths`` asks for anything narrower than the full network (checking
    every ratio first, so a bad one fails before any tracing)."""
    narrower = False
    for item in _as_list(widths):
        if isinstance(item, Mapping):
            if not item:
                raise InvalidInputError("an empty width mapping: give {layer pattern: ratio}")
            for pattern, ratio in item.items():
                if not isinstance(pattern, str) or not pattern:
                    raise InvalidInputError(f"width pattern {pattern!r} is not a layer name")
                narrower |= check_ratio(ratio, f"layer {pattern!r}") < 1.0
        else:
            narrower |= check_ratio(item, "all sliceable layers") < 1.0
    return narrower


def parse_widths(widths, groups: Sequence[ChannelGroup], divisor: int = 1) -> list[WidthConfig]:
    """The distinct width configurations asked for, widest first."""
    if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < 1:
        raise InvalidInputError(f"divisor must be a positive integer, got {divisor!r}")
    requested(widths)
    configs: list[WidthConfig] = []
    seen: set[tuple[int, ...]] = set()
    for item in _as_list(widths):
        if isinstance(item, Mapping):
            ratios = _match(item, groups)
            label = ",".join(f"{k}={float(v):g}" for k, v in item.items())
            uniform = None
        else:
            ratios = [float(item)] * len(groups)
            label, uniform = f"{float(item):g}", float(item)
        channels = tuple(_keep(r, g.channels, divisor) for r, g in zip(ratios, groups))
        if channels in seen:
            continue
        seen.add(channels)
        configs.append(WidthConfig(label, channels, tuple(ratios), uniform))
    configs.sort(key=lambda w: -sum(w.channels))
    return configs


def _keep(ratio: float, channels: int, divisor: int) -> int:
    keep = max(1, round(ratio * channels))
    if divisor > 1:
        keep = max(divisor, int(math.floor(keep / divisor + 0.5)) * divisor)
    return min(keep, channels)


def _match(mapping: Mapping, groups: Sequence[ChannelGroup]) -> list[float]:
    names = [g.name for g in groups]
    ratios: list[float | None] = [None] * len(groups)
    for pattern, ratio in mapping.items():
        hits = [i for i, n in enumerate(names) if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            close = difflib.get_close_matches(pattern, names, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            shown = ", ".join(names[:6]) + (f", ... ({len(names)} in all)" if len(names) > 6 else "")
            raise InvalidInputError(f"width pattern {pattern!r} matches no sliceable layer{hint} "
                                    f"(sliceable: {shown})")
        for i in hits:
            if ratios[i] is None:
                ratios[i] = float(ratio)
    return [1.0 if r is None else r for r in ratios]
