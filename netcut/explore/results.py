"""What an exploration found: one :class:`TrialResult` per retrained TRN and the
:class:`Exploration` that picks among them. Pure data and arithmetic (the loop
fills them, the report and the CLI read ``Exploration.summary()``).

The pick: among the TRNs retrained whose predicted latency (its upper bound, with
a confidence) meets the deadline, the one with the highest validation top-1; ties
go to the lower validation loss, then to the faster. The exploration picks from
what it retrained (the proposals and the off-the-shelf networks), the exhaustive
search from every TRN; both read the same results (a TRN is retrained once), so
they agree whenever the exhaustive search's best lies in the proposal set.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..planner.plan import Candidate
from .candidates import Trial

__all__ = ["Exploration", "TrialResult", "pareto", "pick"]


@dataclass(frozen=True)
class TrialResult:
    """One retrained TRN: the plan's numbers and how its retraining went.

    ``fit_s``: the Lightning fit alone; ``trial_s``: the whole trial (trimming and
    fitting), the time an exploration pays for it; ``trial_cpu_s``: the CPU time the
    process spent on it (all threads; None in results saved before it was recorded).
    All are from the run that retrained it (``resumed``: an earlier run, read back
    from the state)."""

    trial: Trial
    key: str
    feasible: bool
    val_top1: float
    val_loss: float
    best_epoch: int
    epochs_run: int
    stopped_early: bool
    fit_s: float
    trial_s: float
    trainable_params: int
    resumed: bool
    history: tuple[dict, ...] = ()
    trial_cpu_s: float | None = None

    @property
    def candidate(self) -> Candidate:
        return self.trial.candidate

    @property
    def label(self) -> str:
        return self.trial.label

    def record(self) -> dict:
        """Plain data (JSON)."""
        c = self.candidate
        return {"network": c.network, "spec": self.trial.spec, "cut": c.cut,
                "cut_index": c.cut_index, "row": self.trial.row, "whole": c.whole,
                "roles": list(self.trial.roles), "depth_fraction": c.depth_fraction,
                "channels": c.channels, "params_kept": c.params_kept, "flops_kept": c.flops_kept,
                "latency_ms": c.latency_ms, "upper_ms": c.upper_ms, "feasible": self.feasible,
                "val_top1": self.val_top1, "val_loss": self.val_loss,
                "best_epoch": self.best_epoch, "epochs_run": self.epochs_run,
                "stopped_early": self.stopped_early, "fit_s": self.fit_s,
                "trial_s": self.trial_s, "trial_cpu_s": self.trial_cpu_s,
                "trainable_params": self.trainable_params,
                "resumed": self.resumed, "key": self.key,
                "history": [dict(h) for h in self.history]}


def _rank(r: TrialResult) -> tuple:
    return (-r.val_top1, r.val_loss, r.candidate.upper_ms, r.label)


def pick(results) -> TrialResult | None:
    """The most accurate feasible result (ties: lower val loss, then faster)."""
    ok = [r for r in results if r.feasible]
    return min(ok, key=_rank) if ok else None


def pareto(results) -> list[TrialResult]:
    """Results no other beats on both predicted latency and accuracy, fastest first."""
    front, best = [], -1.0
    for r in sorted(results, key=lambda r: (r.candidate.latency_ms, -r.val_top1)):
        if r.val_top1 > best:
            front.append(r)
            best = r.val_top1
    return front


@dataclass
class Exploration:
    """The outcome of :func:`netcut.explore.explore`.

    ``results``: every TRN retrained (or read back) in this exploration, explored
    ones first; ``exhaustive_run``: whether every candidate was retrained;
    ``exhaustive_count``: how many candidates the exhaustive search has (every cut
    at ``settings["exhaustive_granularity"]`` of every network), run or not.
    """

    deadline_ms: float
    hardware: str
    confidence: float | None
    calibrated: bool
    networks: list[str]
    settings: dict
    data: dict
    results: list[TrialResult]
    exhaustive_run: bool
    exhaustive_count: int
    plan_s: float
    wall_s: float = 0.0
    plan_cpu_s: float | None = None
    fastest: dict | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    test: dict = field(default_factory=dict)  # label -> top-1 on the test folder
    export: dict = field(default_factory=dict)

    # ----- the two searches -------------------------------------------------------
    def explored(self) -> list[TrialResult]:
        return [r for r in self.results if r.trial.explored]

    def exhaustive(self) -> list[TrialResult]:
        return list(self.results) if self.exhaustive_run else []

    def off_the_shelf(self) -> list[TrialResult]:
        return [r for r in self.results if "off-the-shelf" in r.trial.roles]

    def chosen(self) -> TrialResult | None:
        """NetCut's pick: the most accurate explored TRN that meets the deadline."""
        return pick(self.explored())

    def baseline(self) -> TrialResult | None:
        """The most accurate off-the-shelf network that meets the deadline."""
        return pick(self.off_the_shelf())

    def exhaustive_choice(self) -> TrialResult | None:
        return pick(self.exhaustive()) if self.exhaustive_run else None

    def gain(self) -> float | None:
        """Relative accuracy gain of the pick over the baseline: (a - b) / b."""
        chosen, base = self.chosen(), self.baseline()
        if chosen is None or base is None or base.val_top1 <= 0:
            return None
        return (chosen.val_top1 - base.val_top1) / base.val_top1

    # ----- what each search cost ----------------------------------------------------
    def exploration_s(self) -> float:
        """Planning plus retraining every explored TRN (each at the time it took)."""
        return self.plan_s + sum(r.trial_s for r in self.explored())

    def exhaustive_s(self) -> float | None:
        """Retraining every TRN (no planning: the exhaustive search needs none)."""
        return sum(r.trial_s for r in self.exhaustive()) if self.exhaustive_run else None

    def speedup(self) -> float | None:
        ex = self.exhaustive_s()
        return ex / self.exploration_s() if ex is not None and self.exploration_s() > 0 else None

    def cpu_times(self) -> dict | None:
        """The two searches' cost in CPU seconds of this process (planning + the
        explored TRNs; every TRN) and their ratio; None unless the exhaustive search
        ran and the planning and every result have a CPU time."""
        if (not self.exhaustive_run or self.plan_cpu_s is None
                or any(r.trial_cpu_s is None for r in self.results)):
            return None
        explored = self.plan_cpu_s + sum(r.trial_cpu_s for r in self.explored())
        exhaustive = sum(r.trial_cpu_s for r in self.exhaustive())
        return {"exploration_cpu_s": explored, "exhaustive_cpu_s": exhaustive,
                "speedup_cpu": exhaustive / explored if explored > 0 else None}

    def comparison(self) -> dict | None:
        """The exhaustive search against the exploration (None when not run)."""
        if not self.exhaustive_run:
            return None
        mine, theirs = self.chosen(), self.exhaustive_choice()
        return {
            "exhaustive_choice": theirs.label if theirs else None,
            "exhaustive_val_top1": theirs.val_top1 if theirs else None,
            "same_network": bool(mine and theirs and mine.trial.ident == theirs.trial.ident),
            "at_least_as_accurate": bool(mine and theirs and mine.val_top1 >= theirs.val_top1),
            "accuracy_gap": (mine.val_top1 - theirs.val_top1) if mine and theirs else None,
            "exhaustive_s": self.exhaustive_s(), "exploration_s": self.exploration_s(),
            "speedup": self.speedup(),
            "count_ratio": len(self.exhaustive()) / max(1, len(self.explored())),
            **(self.cpu_times() or {"exploration_cpu_s": None, "exhaustive_cpu_s": None,
                                    "speedup_cpu": None}),
        }

    def summary(self) -> dict:
        """Everything as plain data (the JSON output and the reports read this)."""
        chosen, base = self.chosen(), self.baseline()
        explored = self.explored()
        return {
            "deadline_ms": self.deadline_ms, "hardware": self.hardware,
            "confidence": self.confidence, "calibrated": self.calibrated,
            "networks": self.networks, "skipped": self.skipped,
            "settings": self.settings, "data": self.data,
            "chosen": chosen.record() if chosen else None,
            "baseline": base.record() if base else None,
            "relative_gain": self.gain(),
            "counts": {"explored": len(explored),
                       "off_the_shelf": len(self.off_the_shelf()),
                       "proposed": sum("proposed" in r.trial.roles for r in explored),
                       "exhaustive": self.exhaustive_count,
                       "retrained_now": sum(not r.resumed for r in self.results),
                       "resumed": sum(r.resumed for r in self.results)},
            "times_s": {"plan": self.plan_s, "plan_cpu": self.plan_cpu_s,
                        "exploration": self.exploration_s(),
                        "exploration_retraining": sum(r.trial_s for r in explored),
                        "exhaustive": self.exhaustive_s(), "this_run_wall": self.wall_s},
            "exhaustive": self.comparison(),
            "pareto": [r.label for r in pareto(self.results)],
            "fastest": self.fastest,
            "test": self.test,
            "export": self.export,
            "results": [r.record() for r in self.results],
        }
