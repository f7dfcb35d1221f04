#!/usr/bin/env bash
# Regenerate every report under reports/ with the project's own commands.
# Run after a change to the estimator, the profiles or the planner.
#   scripts/regenerate_reports.sh            # all
#   scripts/regenerate_reports.sh examples   # only the feasibility examples (fast)
set -euo pipefail
cd "$(dirname "$0")/.."
NETCUT="${NETCUT:-.venv/bin/netcut}"
mkdir -p reports/examples
"$NETCUT" plan --hw jetson-nano --deadline 30ms --report reports/examples/plan-jetson-nano-30ms.html
"$NETCUT" plan --hw raspberry-pi-4 --deadline 100ms --report reports/examples/plan-raspberry-pi-4-100ms.html
"$NETCUT" plan --hw h100-sxm --deadline 2ms --report reports/examples/plan-h100-sxm-2ms.html
"$NETCUT" plan --hw jetson-orin-nano --hw raspberry-pi-5 --hw jetson-nano --deadline 20ms \
  --models resnet18,resnet50,mobilenet_v3_large,mobilenet_v3_small,efficientnet_b0,regnet_y_400mf,convnext_tiny,vit_b_16,swin_t \
  --report reports/examples/plan-three-devices-20ms.html
if [[ "${1:-all}" != "examples" ]]; then
  "$NETCUT" validate
fi
