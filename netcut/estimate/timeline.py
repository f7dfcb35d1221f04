"""Schedule priced rows in time: a host stream dispatching ops and a device stream
running them.

On a GPU in eager mode the host issues kernels asynchronously: a kernel starts
when it has been dispatched *and* the previous kernel has finished. At batch 1 on
a fast GPU the host is the bottleneck, which is why an H100 runs resnet50 in
about the same time at batch 1 and 16. The recurrence

    end[i] = max(end[i-1], host_done[i]) + device[i]

unrolls to ``end = S + cummax(host_done - S_before)`` with ``S`` the prefix sum of
device times, so the whole simulation is two numpy scans. A CPU runs ops where it
dispatches them: its schedule is the plain running sum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .roofline import RowCosts


@dataclass(frozen=True)
class Schedule:
    """Start/end of every row on the host and device streams, in seconds."""

    host_start: np.ndarray
    host_end: np.ndarray
    device_start: np.ndarray
    device_end: np.ndarray
    asynchronous: bool  # host and device overlap (GPU eager)

    @property
    def total_s(self) -> float:
        if len(self.device_end) == 0:
            return 0.0
        return float(max(self.device_end[-1], self.host_end[-1]))


def schedule(costs: RowCosts, asynchronous: bool) -> Schedule:
    launch = costs.launch_s
    if not asynchronous:
        per_row = costs.host_s + costs.device_s
        end = launch + np.cumsum(per_row)
        start = end - per_row
        host_end = start + costs.host_s
        return Schedule(start, host_end, host_end, end, asynchronous=False)
    host_end = launch + np.cumsum(costs.host_s)
    host_start = host_end - costs.host_s
    device_total = np.cumsum(costs.device_s)
    before = device_total - costs.device_s
    device_end = device_total + np.maximum.accumulate(host_end - before)
    device_start = device_end - costs.device_s
    return Schedule(host_start, host_end, device_start, device_end, asynchronous=True)


def continue_schedule(sched: Schedule, stop: int, tail: RowCosts, asynchronous: bool) -> float:
    """Finish time (s) of the first ``stop`` rows of ``sched`` followed by ``tail``'s rows.

    A schedule is causal, so a network cut after row ``stop - 1`` runs exactly the
    prefix of the whole network's schedule; only the few rows of its new head need
    stepping through. This is how every trimmed network is priced from one schedule.
    """
    host, device = sched.host_end[stop - 1], sched.device_end[stop - 1]
    if not asynchronous:  # one stream: every row's dispatch and work in turn
        return float(device + tail.host_s.sum() + tail.device_s.sum())
    for h, d in zip(tail.host_s, tail.device_s):
        host += h
        device = max(device, host) + d
    return float(max(host, device))


def chrome_trace(names: list[str], ops: list[str], sched: Schedule, title: str) -> dict:
    """Trace-event JSON (opens in Perfetto / chrome://tracing), times in µs."""
    events: list[dict] = [
        {"name": "process_name", "ph": "M", "pid": 1, "args": {"name": title}},
        {"name": "thread_name", "ph": "M", "pid": 1, "tid": 1, "args": {"name": "host (dispatch)"}},
        {"name": "thread_name", "ph": "M", "pid": 1, "tid": 2, "args": {"name": "device"}},
    ]
    for i, (name, op) in enumerate(zip(names, ops)):
        host_dur = (sched.host_end[i] - sched.host_start[i]) * 1e6
        dev_dur = (sched.device_end[i] - sched.device_start[i]) * 1e6
        if host_dur > 0:
            events.append({"name": name, "cat": op, "ph": "X", "pid": 1, "tid": 1,
                           "ts": sched.host_start[i] * 1e6, "dur": host_dur})
        if dev_dur > 0:
            events.append({"name": name, "cat": op, "ph": "X", "pid": 1, "tid": 2,
                           "ts": sched.device_start[i] * 1e6, "dur": dev_dur})
    return {"traceEvents": events, "displayTimeUnit": "ms"}
