#!/usr/bin/env bash
# Measure this machine's CPU for `netcut validate --only cpu`: 17 torchvision
# classifiers at batch 1, fp32, whole and trimmed at every block cut, one file per
# network in calibration/data/cpu-$PROFILE/. About 8 minutes on 2 Zen 3 cores, 5.5 on Zen 4
# (SWEEPS=4: about 12 on the Zen 4, 8 on the Xeon 6).
# Run it alone: two threads on a 2-vCPU VM stall whenever anything else runs
# (nice does not help). Each file records the load average when it started. The
# rows of one network are timed in 4 interleaved rounds (netcut measure --rounds).
# Run-to-run scatter on this VM (2026-11-23): between back-to-back runs, minutes
# apart, whole networks moved by 10-25% together (median |run1/run2 - 1| 9.6-12.8%
# over 70 rows of 5 networks, with or without rounds); rounds do not remove it.
#
# Repeatability (a floor under any model's error, shown in reports/validation.md):
# run it again later into the -repeat folder (scored as run 2 and compared row by row):
#   OUT=calibration/data/cpu-$PROFILE-repeat scripts/measure_this_cpu.sh
# The shipped Zen 4 pair scored first was measured with SWEEPS=4 (see the folder README).
# (the shipped Zen 3 run 1 was measured with ROUNDS=1, its run 2 with ROUNDS=4)
# PROFILE names the hwmodels/ profile of the chip this runs on: the 2-vCPU guests
# are not always the same chip (a Zen 3 "Milan" on 2026-11-23, a Zen 4 "Genoa" on
# 2026-12-04, a Xeon 6 "Granite Rapids" on 2026-12-05; lscpu's vendor, "CPU family"/"Model"
# and L3 size tell them apart, and each file records the first three).
set -euo pipefail
cd "$(dirname "$0")/.."
NETCUT=${NETCUT:-.venv/bin/netcut}  # a command, split on spaces: NETCUT="python3 -m netcut" works
THREADS=${THREADS:-2}
PROFILE=${PROFILE:-xeon-gnr-2c}
OUT=${OUT:-calibration/data/cpu-$PROFILE}
REPEATS=${REPEATS:-20}
ROUNDS=${ROUNDS:-4}  # interleaved: a slow spell of the VM spreads over every row
KEEP=${KEEP:---keep-memory}  # --no-keep-memory: glibc unmaps freed activations (the 2026-11 and first 2026-12 runs)
mkdir -p "$OUT"
MODELS=${MODELS:-"resnet50 mobilenet_v2 resnext50_32x4d densenet121 vit_b_16
        resnet18 resnet34 mobilenet_v3_small mobilenet_v3_large efficientnet_b0 squeezenet1_1
        shufflenet_v2_x1_0 googlenet mnasnet1_0 regnet_x_400mf alexnet convnext_tiny"}
SWEEPS=${SWEEPS:-1}  # >1: time every network REPEATS/SWEEPS times, SWEEPS times over, then merge
if [[ "$SWEEPS" -le 1 ]]; then
  for m in $MODELS; do
    $NETCUT measure "$m" --cuts --threads "$THREADS" $KEEP --warmup 5 --repeats "$REPEATS" --rounds "$ROUNDS" \
      --profile-hint "$PROFILE" --out "$OUT/$m.json" > /dev/null
  done
else
  # the machine's speed drifts over minutes: sweeping all networks S times and taking
  # each row's median over the sweeps gives every network the same mix of minutes
  WORK=$(mktemp -d)
  trap 'rm -rf "$WORK"' EXIT
  for s in $(seq 1 "$SWEEPS"); do
    mkdir -p "$WORK/sweep$s"
    for m in $MODELS; do
      $NETCUT measure "$m" --cuts --threads "$THREADS" $KEEP --warmup 5 --repeats $((REPEATS / SWEEPS)) \
        --profile-hint "$PROFILE" --out "$WORK/sweep$s/$m.json" > /dev/null
    done
  done
  "${PYTHON:-.venv/bin/python}" scripts/merge_sweeps.py "$OUT" $(for s in $(seq 1 "$SWEEPS"); do echo "$WORK/sweep$s"; done)
fi
echo "measured $(ls "$OUT"/*.json | wc -l) networks into $OUT"
