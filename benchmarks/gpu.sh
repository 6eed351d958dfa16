#!/usr/bin/env bash
# GPU benchmarks for a session lent a CUDA machine (CI never has one; see benchmarks/gpu_benchmark.py).
# Needs the features built on the CPU machine first (data/processed/..., carried to the GPU machine):
#   sessionflow ingest|validate|featurize --dataset-spec specs/amazon-beauty.yaml --params benchmarks/beauty.yaml
#   sessionflow ingest|validate|featurize --dataset ml-latest-small --params benchmarks/ml-latest-small.yaml
# The GPU machine has torch/numpy/pandas/pyarrow/scipy/pyyaml/pytest but not pydantic: carry its wheels in
# .whl/ (see the device notes) and they are installed to /tmp/site first.
# Writes $RESULTS/gpu-*.json (default results/): device name, test and validation NDCG@10/HR@10, epochs/s,
# seconds to the best validation NDCG, peak GPU memory (max allocated), the validation curve.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
RESULTS="${RESULTS:-results}"
mkdir -p "$RESULTS"
export PYTHONUNBUFFERED=1
if ! "$PY" -c "import pydantic" 2>/dev/null && compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0), torch.__version__)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
"$PY" -m pytest -q -m gpu -p no:cacheprovider tests/model/test_training_loop.py
B=data/processed/amazon-beauty-lines/features
M=data/processed/ml-latest-small/features
# 1. Beauty as the CPU benchmark sets it (SASRec full softmax, fused with item-kNN)
"$PY" benchmarks/gpu_benchmark.py --features $B --params benchmarks/beauty.yaml \
    --models sasrec,itemknn,hybrid --output "$RESULTS/gpu-beauty.json"
# 2. ml-latest-small: the sequence models (loss auto = exact full softmax on CUDA) and the hybrid
"$PY" benchmarks/gpu_benchmark.py --features $M --params benchmarks/ml-latest-small.yaml \
    --models sasrec,bert4rec,textsasrec,itemknn,hybrid --output "$RESULTS/gpu-ml-latest-small.json"
# 3. Beauty, a wider SASRec with more dropout (Beauty is sparse: 8.9 items a user)
"$PY" benchmarks/gpu_benchmark.py --features $B --params benchmarks/beauty.yaml --label wide \
    --set sasrec.hidden_size=128 --set sasrec.dropout=0.5 --set sasrec.lr=0.001 --set sasrec.epochs=200 \
    --set sasrec.patience=8 --models sasrec,itemknn,hybrid --output "$RESULTS/gpu-beauty-wide.json"
