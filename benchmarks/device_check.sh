#!/usr/bin/env bash
# The GPU check, for a machine with one CUDA device (under 8 minutes): the CUDA tests, one M2 epoch timed
# on the GPU with the data on the device, and bf16 / fp16 runs of the MNIST experiment that must stay finite.
# Run from the repository root, in an environment with the project installed (pip install -e ".[test]"):
#     PYRO_PARTIAL_DATA=../shared/data bash benchmarks/device_check.sh OUT_DIR
# Writes OUT_DIR/cuda_tests.txt, OUT_DIR/epoch_speed_gpu.json and OUT_DIR/runs/*/results.json.
set -euo pipefail
out=${1:-device_check}
mkdir -p "$out/runs"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python -m pytest -q -m cuda tests 2>&1 | tee "$out/cuda_tests.txt"
python -m benchmarks.epoch_speed --accelerator gpu --out "$out/epoch_speed_gpu.json"
for precision in 32-true bf16-mixed 16-mixed; do
    pyro-partial train mnist --labels 3000 --z-dim 50 --epochs 2 --seed 0 --no-progress \
        --accelerator gpu --devices 1 --precision "$precision" --out "$out/runs/m2_$precision"
done
pyro-partial train mnist --labels 3000 --z-dim 50 --epochs 3 --seed 0 --no-progress --accelerator gpu \
    --devices 1 --resume --out "$out/runs/m2_32-true"
python - "$out" <<'PY'
import json, math, sys
from pathlib import Path
out = Path(sys.argv[1])
for results in sorted(out.glob("runs/*/results.json")):
    record = json.loads(results.read_text())
    finite = all(math.isfinite(record[key]) for key in ("test_error", "train_seconds"))
    print(f"{results.parent.name}: test error {record['test_error']:.4f} after {record['epochs']} epochs, "
          f"{record['train_seconds']:.1f} s, device {record['device']}, finite {finite}")
PY
