#!/bin/sh
# The NCCL collective on one GPU machine, kiln beside PyTorch (docs/benchmarks.md, "NCCL
# collective"): `kiln nccl-rank --ranks 1` over every GPU present (one process,
# ncclCommInitAll), then `kiln burnin --tests collective --json` over them, then
# torch.distributed's all-reduce and all-gather with one process per GPU,
# the same sizes, bus bandwidth computed the same way. Writes the JSON documents to $OUT (or
# the current directory). Needs a built kiln (KILN, default target/release/kiln), PyTorch with
# CUDA, and libnccl.so.2 where kiln can load it (PyTorch's wheel carries one: its directory is
# put on LD_LIBRARY_PATH below).
set -eu
KILN=${KILN:-target/release/kiln}
OUT=${OUT:-.}
SIZES=${SIZES:-64,1024,4096}
nccl_dir=$(python3 -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "lib"))' 2>/dev/null || true)
if [ -n "$nccl_dir" ]; then
    export LD_LIBRARY_PATH="$nccl_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$OUT/gpus.txt" || true
rc=0
"$KILN" nccl-rank --ranks 1 --json --sizes-mib "$SIZES" > "$OUT/kiln-nccl.json" || rc=$?
echo "kiln nccl-rank exit $rc"
# kiln burnin's own collective test over the same GPUs, judged as a burn-in (the platform as
# detected; one GPU gives "skipped: needs 2 or more GPUs", not applicable, exit 7).
brc=0
KILN_BURNIN_LOCK="${TMPDIR:-/tmp}/kiln-burnin.lock" \
    "$KILN" burnin --tests collective --json > "$OUT/kiln-burnin-collective.json" || brc=$?
echo "kiln burnin --tests collective exit $brc"
python3 "$(dirname "$0")/torch_reference.py" nccl "$SIZES" > "$OUT/torch-nccl.json"
cat "$OUT/kiln-nccl.json" "$OUT/kiln-burnin-collective.json" "$OUT/torch-nccl.json"
exit $rc
