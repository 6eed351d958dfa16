#!/usr/bin/env bash
# Settings variants on a lent GPU machine, run side by side on the one GPU (the models are small: the GPU
# is mostly idle with one of them), so the seconds here are measured under that sharing: use
# benchmarks/gpu.sh for clean timings. Same set-up as gpu.sh (features carried, pydantic wheels in .whl/).
# Writes $RESULTS/gpu-sweep.json: {variant: gpu_benchmark output}.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
RESULTS="${RESULTS:-results}"
LIMIT="${LIMIT:-270}"
mkdir -p "$RESULTS/sweep"
export PYTHONUNBUFFERED=1
if ! "$PY" -c "import pydantic" 2>/dev/null && compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
B=data/processed/amazon-beauty-lines/features
M=data/processed/ml-latest-small/features
run() {  # run NAME FEATURES PARAMS MODELS [--set ...]
    local name=$1 features=$2 params=$3 models=$4
    shift 4
    timeout "$LIMIT" "$PY" benchmarks/gpu_benchmark.py --features "$features" --params "$params" \
        --models "$models" --label "$name" --output "$RESULTS/sweep/$name.json" "$@" \
        >"$RESULTS/sweep/$name.log" 2>&1
    echo "$name exit $?"
}
run mls-sasrec-len200 $M benchmarks/ml-latest-small.yaml sasrec,itemknn,hybrid --set sasrec.max_len=200 &
run mls-sasrec-stride25 $M benchmarks/ml-latest-small.yaml sasrec,itemknn,hybrid --set sasrec.window_stride=25 --set sasrec.epochs=40 &
run mls-bert-len200 $M benchmarks/ml-latest-small.yaml bert4rec --set bert4rec.max_len=200 &
run mls-bert-stride25 $M benchmarks/ml-latest-small.yaml bert4rec --set bert4rec.window_stride=25 --set bert4rec.epochs=40 &
run mls-bert-stride25-mask04 $M benchmarks/ml-latest-small.yaml bert4rec --set bert4rec.window_stride=25 --set bert4rec.epochs=40 \
    --set bert4rec.mask_prob=0.4 --set bert4rec.last_mask_prob=0.2 &
run mls-bert-len200-wd $M benchmarks/ml-latest-small.yaml bert4rec --set bert4rec.max_len=200 \
    --set bert4rec.weight_decay=0.1 --set bert4rec.dropout=0.3 --set bert4rec.lr=0.001 &
run beauty-fp32 $B benchmarks/beauty.yaml sasrec,itemknn,hybrid --set sasrec.amp=false &
run beauty-drop05 $B benchmarks/beauty.yaml sasrec,itemknn,hybrid --set sasrec.dropout=0.5 --set sasrec.epochs=60 \
    --set sasrec.patience=6 &
wait
"$PY" - "$RESULTS" <<'EOF'
import json, pathlib, sys
root = pathlib.Path(sys.argv[1])
out = {p.stem: json.loads(p.read_text()) for p in sorted((root / "sweep").glob("*.json"))}
(root / "gpu-sweep.json").write_text(json.dumps(out, indent=2))
for name, res in out.items():
    for model, m in res["models"].items():
        print(f"{name:28s} {model:10s} test ndcg@10 {m['ndcg@10']:.4f} hr@10 {m['hr@10']:.4f} "
              f"valid {m['valid_ndcg@10']:.4f} epochs {m['epochs']} best {m['best_epoch']}")
EOF
tail -n 3 "$RESULTS"/sweep/*.log
