#!/usr/bin/env bash
# The GPU measurements, as one prepared run on a lent GPU machine (JAX and PyTorch with CUDA, no
# TensorFlow, nothing reachable from it): the blog's training step on JAX and PyTorch at the blog's
# batch and larger ones, masked and unmasked encoder, float32 and float16, beside the PyTorch twin on
# the same GPU; then `train configs/lcsts_budget.py` end to end on JAX, timed, and `evaluate`.
#
# Here, once (the project's pure-Python needs and Keras, as wheels for the machine's Python 3.12):
#   echo /.whl/ >> .git/info/exclude; mkdir -p .whl
#   P="--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64"
#   python -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp $P -d .whl \
#       keras==3.15.1 namex optree rouge nltk uvicorn
#   python -m pip wheel --no-deps -w .whl jieba==0.42.1          # jieba is published as source only
#   mkdir -p shared/tools && cp ../shared/tools/torch_twin.py shared/tools/   # the twin travels in shared/
# Then with the device tool: run(command="bash bench/gpu.sh", carry=[".whl"], timeout_s=600). What the
# machine prints comes back in the reply; the run's files in $OUT (bench.txt, train.log, evaluate.txt).
set -u
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site || exit 1
export PYTHONUNBUFFERED=1 OUT="${OUT:-/tmp/out}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import jax, torch, keras; print('jax', jax.__version__, jax.devices(), 'torch', torch.__version__, 'keras', keras.__version__)"
twin=shared/tools/torch_twin.py
[ -f "$twin" ] && ln -sfn "$PWD/shared" ../shared 2>/dev/null  # bench/backends.py looks for ../shared/tools

# 1. the step: JAX and PyTorch, batches of 64 (the blog's) and 1024, masked and unmasked encoder, float32 and float16
timeout 380 python3 bench/backends.py --backends jax,torch --batches 64,1024 --unmasked --mixed --rounds 1 \
    --steps 8 --warmup 3 --device cuda 2>&1 | tee "$OUT/bench.txt"

# 2. the LCSTS budget recipe end to end on JAX (the README's 5 to 9 minutes on 2 CPU cores), and its scores
start=$(date +%s)
KERAS_BACKEND=jax timeout 160 python3 seq2seq_title.py train configs/lcsts_budget.py --out /tmp/budget_jax \
    > "$OUT/train.log" 2>&1
echo "train configs/lcsts_budget.py on JAX: exit $?, $(( $(date +%s) - start )) s" | tee -a "$OUT/bench.txt"
grep -a "^epoch [0-9]*:" "$OUT/train.log" | tail -3
KERAS_BACKEND=jax timeout 60 python3 seq2seq_title.py evaluate configs/lcsts_budget.py --model /tmp/budget_jax \
    --out /tmp/budget_jax/dev.jsonl 2>/dev/null | tee "$OUT/evaluate.txt"
