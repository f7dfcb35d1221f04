#!/usr/bin/env bash
# Measure the CPU of a lent GPU machine (the device tool's H200 host: 16 vCPUs of an
# Intel Xeon) with scripts/measure_this_cpu.sh, to judge a datasheet-only CPU profile
# (xeon-emr-16c) on a chip this project does not otherwise reach. Runs under that
# machine's own python3 and torch; pydantic travels as wheels in .whl (see
# /work/.library/device/README.md). Each configuration is packed into $OUT as soon as
# it finishes, so a run cut short keeps what it finished:
#   16 threads twice (run 1 and run 2: the repeatability floor), then 4 threads.
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?OUT must name the folder to pack results into}"
START=$SECONDS
lscpu > "$OUT/lscpu.txt"
python3 -c "import torch, torchvision; print(torch.__version__, torchvision.__version__, torch.backends.cpu.get_cpu_capability(), torch.get_num_threads())" | tee "$OUT/torch.txt"
export NETCUT="python3 -m netcut" PYTHON=python3 PROFILE=${PROFILE:-xeon-emr-16c}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
WORK=/tmp/host-cpu
for cfg in ${CONFIGS:-"16:run1" "16:run2" "4:run1"}; do
  threads=${cfg%%:*}; run=${cfg##*:}
  name="cpu-$PROFILE-t$threads-$run"
  THREADS=$threads REPEATS=${REPEATS:-10} ROUNDS=${ROUNDS:-2} SWEEPS=1 OUT="$WORK/$name" \
    scripts/measure_this_cpu.sh
  tar czf "$OUT/$name.tgz" -C "$WORK" "$name"
  echo "$name done at $((SECONDS - START)) s"
done
