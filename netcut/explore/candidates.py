"""Which trimmed networks an exploration retrains, and which an exhaustive search would.

NetCut's exploration retrains the plan's *proposal set* (per network, the deepest
cut whose predicted latency meets the deadline and up to ``runners_up`` feasible
cuts just shallower; see :meth:`netcut.planner.plan.Plan.proposals`) and, as the
baseline it is judged against, the *off-the-shelf* networks that meet the deadline
(the whole feature extractor with a new head). The exhaustive search it is
measured against knows no latency model: it retrains every legal cut of every
network, feasible or not (at ``exhaustive_granularity``: every layer by default),
and only then keeps the most accurate one that meets the deadline.

A TRN is identified by its model spec and the table row it is cut after, not by
the cut's name: the block cut ``layer1.0`` and the layer cut at the same row
(``layer1.0.relu#2``) are one network, retrained once and shared by both searches.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping, Sequence

from ..planner.plan import Candidate, Plan

__all__ = ["ROLES", "Trial", "exhaustive_trials", "explored_trials"]

#: why a TRN is retrained: the baseline, NetCut's proposal, or only for the exhaustive search
ROLES = ("off-the-shelf", "proposed", "exhaustive")


@dataclass(frozen=True)
class Trial:
    """One TRN to retrain: the plan's candidate, the model spec it is cut from, the
    row of the network's LayerTable it is cut after, and why it is retrained
    (``roles``, a subset of :data:`ROLES` in that order)."""

    candidate: Candidate
    spec: str
    row: int
    roles: tuple[str, ...]

    @property
    def ident(self) -> tuple[str, int]:
        """(spec, row): the same TRN whatever granularity named its cut."""
        return (self.spec, self.row)

    @property
    def label(self) -> str:
        c = self.candidate
        return f"{c.network}@{c.cut}" + (" (whole)" if c.whole else "")

    @property
    def explored(self) -> bool:
        """Retrained by NetCut's exploration (not only by the exhaustive search)."""
        return "off-the-shelf" in self.roles or "proposed" in self.roles


def _row(plan: Plan, c: Candidate) -> int:
    return int(plan.cut_rows[c.network][c.cut_index])


def explored_trials(plan: Plan, specs: Mapping[str, str]) -> list[Trial]:
    """The off-the-shelf networks that meet the deadline, then the proposals not
    among them, each network's deepest first; ``specs``: plan network name -> spec.

    A whole network that is also the deepest feasible cut is one trial with both roles.
    """
    order = {name: i for i, name in enumerate(plan.networks)}
    trials: dict[tuple[str, int], Trial] = {}
    shelf = sorted(plan.off_the_shelf(), key=lambda c: order[c.network])
    proposals = sorted(plan.proposals(), key=lambda c: (order[c.network], -c.cut_index))
    for role, pool in (("off-the-shelf", shelf), ("proposed", proposals)):
        for c in pool:
            trial = Trial(c, specs[c.network], _row(plan, c), (role,))
            old = trials.get(trial.ident)
            trials[trial.ident] = trial if old is None else replace(
                old, roles=_ordered(old.roles + (role,)))
    return list(trials.values())


def exhaustive_trials(plan: Plan, specs: Mapping[str, str],
                      explored: Sequence[Trial]) -> list[Trial]:
    """Every candidate of ``plan`` (the exhaustive plan, any granularity): the
    explored trials first (their names kept, role ``exhaustive`` added), then the
    rest network by network, deepest first."""
    known = {t.ident: t for t in explored}
    out: dict[tuple[str, int], Trial] = {}
    for t in explored:
        out[t.ident] = replace(t, roles=_ordered(t.roles + ("exhaustive",)))
    order = {name: i for i, name in enumerate(plan.networks)}
    for c in sorted(plan.candidates, key=lambda c: (order[c.network], -c.cut_index)):
        ident = (specs[c.network], _row(plan, c))
        if ident not in known and ident not in out:
            out[ident] = Trial(c, ident[0], ident[1], ("exhaustive",))
    return list(out.values())


def _ordered(roles: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(r for r in ROLES if r in roles)
