#!/usr/bin/env bash
# GPU benchmarks for a session lent a CUDA machine (CI never has one; see benchmarks/gpu_benchmark.py).
# Needs the features built on the CPU machine first (data/processed/..., carried to the GPU machine):
#   sessionflow featurize --dataset-spec specs/amazon-beauty.yaml --params benchmarks/beauty.yaml
#   sessionflow featurize --dataset ml-latest-small --params benchmarks/ml-latest-small.yaml
# Writes results/gpu-*.json: device name, epochs/s, seconds to the best validation NDCG, peak GPU memory.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0))"
"$PY" -m pytest -q -m gpu -p no:cacheprovider tests/model/test_training_loop.py
"$PY" benchmarks/gpu_benchmark.py --features data/processed/amazon-beauty-lines/features \
    --params benchmarks/beauty.yaml --models sasrec --output results/gpu-beauty.json
"$PY" benchmarks/gpu_benchmark.py --features data/processed/ml-latest-small/features \
    --params benchmarks/ml-latest-small.yaml --models sasrec,bert4rec,textsasrec --output results/gpu-ml-latest-small.json
