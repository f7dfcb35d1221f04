#!/usr/bin/env bash
# Measure this machine's CPU for `netcut validate --only cpu`: 17 torchvision
# classifiers at batch 1, fp32, whole and trimmed at every block cut, one file per
# network in calibration/data/cpu-epyc-milan-2c/. About 15 minutes on 2 cores.
# On a shared machine run it alone (or give it priority: sudo nice -n -10 ...);
# each file records the load average when it started.
#
# Repeatability (a floor under any model's error, shown in reports/validation.md):
# measure some networks again later into the -repeat folder, e.g.
#   OUT=calibration/data/cpu-epyc-milan-2c-repeat \
#   MODELS="resnet18 mobilenet_v3_large efficientnet_b0 squeezenet1_1 googlenet" scripts/measure_this_cpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
NETCUT=${NETCUT:-.venv/bin/netcut}
OUT=${OUT:-calibration/data/cpu-epyc-milan-2c}
REPEATS=${REPEATS:-20}
mkdir -p "$OUT"
MODELS=${MODELS:-"resnet50 mobilenet_v2 resnext50_32x4d densenet121 vit_b_16
        resnet18 resnet34 mobilenet_v3_small mobilenet_v3_large efficientnet_b0 squeezenet1_1
        shufflenet_v2_x1_0 googlenet mnasnet1_0 regnet_x_400mf alexnet convnext_tiny"}
for m in $MODELS; do
  "$NETCUT" measure "$m" --cuts --threads 2 --warmup 5 --repeats "$REPEATS" \
    --profile-hint epyc-milan-2c --out "$OUT/$m.json" > /dev/null
done
echo "measured $(ls "$OUT"/*.json | wc -l) networks into $OUT"
