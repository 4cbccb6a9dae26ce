#!/usr/bin/env bash
# Everything a GPU session checks, in one device call (about 6-8 minutes on an H200):
#   here:    bash scripts/fetch_gpu_wheels.sh
#   device:  run(command="bash scripts/gpu_check.sh", carry=[".whl"], timeout_s=590)
# Writes to $OUT (the device returns at most 8 files): env.txt, tests.log, bench.log, benches.json (every
# `upscale bench --json` report, by name) and table.md (the README's GPU table rows).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-check}
work=$(mktemp -d)
mkdir -p "$OUT"
start=$(date +%s)
budget=${GPU_CHECK_SECONDS:-540}  # stop starting benches past this, so the call ends inside its 600 s
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "no wheels: run scripts/fetch_gpu_wheels.sh first"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD
{ nvidia-smi; python3 -c "import torch, av; print('torch', torch.__version__, 'av', av.__version__,
  torch.cuda.get_device_name(), [c for c in av.codecs_available if 'nvenc' in c])"; nproc; } > "$OUT/env.txt" 2>&1
python3 - >> "$OUT/env.txt" 2>&1 <<'PY'
from upscaler.errors import MediaError
from upscaler.video.options import _try_open
try:
    _try_open("h264_nvenc", "yuv420p", {})
    print("NVENC opens")
except MediaError as exc:
    print(f"NVENC does not open, so --codec auto takes libx264: {exc}")
PY
tail -4 "$OUT/env.txt"

# The CUDA tests (fp16 vs fp32, transfers, the device colour path) and the CPU suites they lean on.
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_bench.py tests/test_engine.py tests/test_yuv.py \
  tests/test_video_planar.py tests/test_video.py 2>&1 | tee "$OUT/tests.log" | tail -15

bench() {  # name, then upscale bench options
  local name=$1; shift
  local left=$(( budget - ($(date +%s) - start) ))
  if (( left < 30 )); then echo "== bench $name: skipped, ${left}s left"; return; fi
  echo "== bench $name: $*"
  echo "== bench $name: $*" >> "$OUT/bench.log"
  timeout $(( left < 120 ? left : 120 )) python3 -m upscaler bench --json "$@" > "$work/$name.json" \
    2>> "$OUT/bench.log" || { echo "bench $name failed:"; tail -3 "$OUT/bench.log"; rm -f "$work/$name.json"; }
}
bench 1080p --size 480x270 --frames 240
bench 1080p-ultrafast --size 480x270 --frames 240 --preset ultrafast
bench 4k --size 960x540 --frames 120 --preset ultrafast
bench 4k-swscale --size 960x540 --frames 120 --preset ultrafast --colour-convert swscale --no-sequential
bench 4k-compile --size 960x540 --frames 120 --preset ultrafast --compile --no-sequential
bench 4k-x2 -s 2 --size 1920x1080 --frames 60 --preset ultrafast --no-sequential
python3 scripts/bench_table.py "$work"/*.json | tee "$OUT/table.md"
python3 -c "import json, pathlib, sys; print(json.dumps({p.stem: json.loads(p.read_text())
  for p in sorted(pathlib.Path(sys.argv[1]).glob('*.json'))}, indent=1))" "$work" > "$OUT/benches.json"
