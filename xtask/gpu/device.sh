#!/bin/sh
# Every GPU path of kiln in one call on a GPU machine (docs/benchmarks.md, "The device script"),
# beside PyTorch's reference figures on the same GPUs. It builds nothing: it runs the stripped
# kiln built elsewhere (KILN, default target/gpu/kiln: `cargo build --profile dist` then copy
# target/dist/kiln there) and python3 with PyTorch. Every step's exit code and wall time go to
# $OUT/summary.txt and each step's output to $OUT/<step>.*; a failing step never stops the
# others. About 5 minutes on one GPU with the default DURATION.
set -u
KILN=${KILN:-target/gpu/kiln}
OUT=${OUT:-./gpu-out}
DURATION=${DURATION:-20s}
SIZES=${SIZES:-64,1024,4096}
HERE=$(dirname "$0")
mkdir -p "$OUT"
DB="$OUT/kiln.db"
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"

# cuBLASLt, NVRTC and NCCL from PyTorch's wheel, where the machine has no CUDA toolkit of its own.
libs=$(python3 - <<'PY' 2>/dev/null
import importlib, os
dirs = []
for mod in ("nvidia.cublas", "nvidia.cuda_nvrtc", "nvidia.nccl", "nvidia.cu13"):
    try:
        m = importlib.import_module(mod)
    except ImportError:
        continue
    for p in list(m.__path__):
        for sub in ("lib", "lib64"):
            d = os.path.join(p, sub)
            if os.path.isdir(d):
                dirs.append(d)
print(":".join(dirs))
PY
)
if [ -n "$libs" ]; then
    export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

# step NAME EXPECTED-EXIT COMMAND...: runs it, output in $OUT/NAME.out, one summary line.
step() {
    name=$1
    want=$2
    shift 2
    t0=$(date +%s.%N)
    "$@" > "$OUT/$name.out" 2> "$OUT/$name.err"
    rc=$?
    t1=$(date +%s.%N)
    verdict=ok
    [ "$rc" = "$want" ] || verdict="UNEXPECTED (wanted $want)"
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    printf '%-22s exit %-3s %6s s  %s\n' "$name" "$rc" "$secs" "$verdict" >> "$SUMMARY"
}

nvidia-smi --query-gpu=index,name,pci.device_id,serial,driver_version,power.limit --format=csv > "$OUT/gpus.csv" 2>&1
"$KILN" --version > "$OUT/kiln-version.txt" 2>&1

step inspect 0 "$KILN" inspect --json
step capture 0 "$KILN" capture "$OUT/capture"
step inspect-replay 0 "$KILN" inspect --root "$OUT/capture" --json
if cmp -s "$OUT/inspect.out" "$OUT/inspect-replay.out"; then
    echo "capture round trip: identical JSON" >> "$SUMMARY"
else
    echo "capture round trip: JSON DIFFERS" >> "$SUMMARY"
fi
step validate 0 "$KILN" validate --json --db "$DB"
step healthcheck 0 "$KILN" healthcheck
# Every burn-in test the platform has (gemm, memtest, hbm, host-link, p2p and the in-node
# collective with two or more GPUs, host), recorded.
step burnin 0 "$KILN" burnin --duration "$DURATION" --json --db "$DB"
step burnin-collective 0 "$KILN" burnin --tests collective --json
# Planted faults must be caught: exit 1 each.
step fault-gemm 1 "$KILN" burnin --tests gemm --duration 3s --inject-fault gemm-bitflip --json
step fault-memtest 1 "$KILN" burnin --tests memtest --duration 2s --inject-fault memtest-corrupt --json
# One NCCL rank over every GPU present (the node side of the rack collective).
step nccl-rank 0 "$KILN" nccl-rank --ranks 1 --json --sizes-mib "$SIZES"
step report 0 "$KILN" report --db "$DB" --format json
# The references, after kiln, on the same GPUs.
step torch-burnin 0 python3 "$HERE/torch_reference.py" 8192 20
step torch-nccl 0 python3 "$HERE/torch_reference.py" nccl "$SIZES"
# Read-only paths against nvidia-smi -q, 10 runs each.
for cmd in "$KILN healthcheck" "$KILN inspect --json" "nvidia-smi -q"; do
    t0=$(date +%s.%N)
    for _ in 1 2 3 4 5 6 7 8 9 10; do $cmd > /dev/null 2>&1; done
    t1=$(date +%s.%N)
    mean=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 10 }')
    printf 'timing: %-28s %s s mean of 10\n' "$cmd" "$mean" >> "$SUMMARY"
done
cat "$SUMMARY"
