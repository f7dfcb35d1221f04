"""The header every measurement file starts with: schema, device, protocol, environment."""

from __future__ import annotations

from ..measurements import LAYER_SCHEMA_NAME, SCHEMA_NAME, SCHEMA_VERSION
from .environment import environment
from .timing import GRAPH_PROTOCOL, LAYER_PROTOCOL, PROTOCOL, ROUNDS_PROTOCOL


def file_header(device: str, *, warmup: int, repeats: int, rounds: int = 1, mode: str = "eager",
                threads: int | None = None, cudnn_benchmark: bool = True,
                profile_hint: str | None = None) -> dict:
    """The header of a ``netcut measure`` file: what was run, how, and on what."""
    env = environment(device)
    env["cudnn_benchmark"] = bool(cudnn_benchmark)  # what the run sets, not what it found
    if threads:
        env["threads"] = threads  # what the run will use (measure() sets it)
    protocol = PROTOCOL.format(warmup=warmup, repeats=repeats)
    if mode == "graph":
        protocol += GRAPH_PROTOCOL
    if rounds > 1:
        protocol += ROUNDS_PROTOCOL.format(rounds=rounds, per_round=repeats // rounds)
    return {"schema": SCHEMA_NAME, "version": SCHEMA_VERSION,
            "device": env.get("gpu") or env["cpu"], "profile_hint": profile_hint,
            "source": "netcut measure (this machine)", "protocol": protocol, "environment": env}


def layer_file_header(header: dict, *, warmup: int, repeats: int) -> dict:
    """The per-layer file's header: the whole-network one with the layer schema and protocol."""
    return header | {"schema": LAYER_SCHEMA_NAME,
                     "protocol": LAYER_PROTOCOL.format(warmup=warmup, repeats=repeats)}
