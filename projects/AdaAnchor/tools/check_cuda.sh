#!/usr/bin/env bash
# Run AdaAnchor's CUDA-only paths once, on a machine with a GPU (issue 9, item 4):
#   1. a few training iterations of each synthetic config on cuda, with and without SOLVER.AMP.ENABLED;
#   2. inference with torchvision's deformable convolution (MODEL.DEKR.OFFSET_BLOCK adaptive), on cuda and
#      on cpu with the same weights;
#   3. adaanchor.anchor.assign_adaptive_anchors on the same inputs on cpu and cuda: the same positives.
# Usage: projects/AdaAnchor/tools/check_cuda.sh   (PYTHON=... to choose the interpreter; ITERS=N iterations)
# Without CUDA it says so and exits 0, having run nothing. Any failure exits non-zero.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
PYTHON=${PYTHON:-python}
ITERS=${ITERS:-3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo "check_cuda.sh: CUDA is not available (torch.cuda.is_available() is False): nothing run"
    exit 0
fi
"$PYTHON" -c 'import torch; print("check_cuda.sh: torch", torch.__version__, "on", torch.cuda.get_device_name(0))'

OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

for config in configs/synthetic_dekr_adaanchor.yaml configs/synthetic_dekr_heatmap.yaml; do
    for amp in False True; do
        name=$(basename "$config" .yaml)_amp_$amp
        echo "== 1. training: $config, SOLVER.AMP.ENABLED $amp, $ITERS iterations on cuda"
        "$PYTHON" train_net.py --config-file "$config" MODEL.DEVICE cuda SOLVER.AMP.ENABLED "$amp" \
            SOLVER.MAX_ITER "$ITERS" SOLVER.IMS_PER_BATCH 4 SOLVER.CHECKPOINT_PERIOD 100000 \
            DATALOADER.NUM_WORKERS 2 TEST.EVAL_PERIOD 0 DATASETS.TEST "()" OUTPUT_DIR "$OUT/$name" \
            > "$OUT/$name.log" 2>&1 || { tail -n 40 "$OUT/$name.log"; echo "FAILED: $name"; exit 1; }
        grep -E "iter: [0-9]+ .*total_loss" "$OUT/$name.log" | tail -n 1 || true
    done
done

echo "== 2. inference with deformable convolution (MODEL.DEKR.OFFSET_BLOCK adaptive), cuda vs cpu"
"$PYTHON" - <<'PY'
import numpy as np
import torch
from detectron2.engine import DefaultPredictor
import adaanchor.modeling.dekr_blocks as blocks
from adaanchor.engine import build_cfg

calls = []
_deform = blocks.deform_conv2d
blocks.deform_conv2d = lambda x, *a, **k: calls.append(x.device.type) or _deform(x, *a, **k)
opts = ["MODEL.DEKR.OFFSET_BLOCK", "adaptive", "MODEL.ADAANCHOR.TEST.CONFIDENCE_THRESHOLD", "0.0"]
image = (np.random.default_rng(0).random((300, 400, 3)) * 255).astype(np.uint8)
torch.manual_seed(0)
cuda = DefaultPredictor(build_cfg("configs/synthetic_dekr_adaanchor.yaml", opts + ["MODEL.DEVICE", "cuda"]))
cpu = DefaultPredictor(build_cfg("configs/synthetic_dekr_adaanchor.yaml", opts + ["MODEL.DEVICE", "cpu"]))
cpu.model.load_state_dict({k: v.cpu() for k, v in cuda.model.state_dict().items()})
a, b = cuda(image)["instances"].to("cpu"), cpu(image)["instances"]
print(f"cuda: {len(a)} poses, cpu: {len(b)} poses; torchvision deform_conv2d calls: {calls.count('cuda')} on cuda")
assert calls.count("cuda") > 0, "the adaptive block did not run torchvision's deformable convolution on cuda"
if len(a) and len(a) == len(b):
    print(f"max |score cuda - cpu| = {float((a.scores - b.scores).abs().max()):.2e}")
PY

echo "== 3. adaptive anchor assignment, cpu vs cuda on the same inputs"
"$PYTHON" - <<'PY'
import torch
from adaanchor.anchor import assign_adaptive_anchors

g = torch.Generator().manual_seed(0)
B, K, H, W, T = 2, 14, 32, 32, 6
confidence = torch.rand(B, K, H, W, generator=g) * 0.98 + 0.01
estimates = torch.rand(B, K, H, W, 2, generator=g) * torch.tensor([W, H])
targets = torch.rand(B, K, T, 2, generator=g) * torch.tensor([W, H])
valid = torch.rand(B, K, T, generator=g) > 0.2
for kwargs in ({}, {"kernel": "laplacian"}, {"fusion": "add"}, {"topk": 1}):
    cpu = assign_adaptive_anchors(confidence, estimates, targets, valid, **kwargs)
    gpu = assign_adaptive_anchors(confidence.cuda(), estimates.cuda(), targets.cuda(), valid.cuda(), **kwargs)
    same = torch.equal(cpu.positive_index, gpu.positive_index.cpu()) and torch.equal(
        cpu.positive_target, gpu.positive_target.cpu()) and torch.equal(cpu.target_used, gpu.target_used.cpu())
    diff = float((cpu.positive_score - gpu.positive_score.cpu()).abs().max()) if same and len(cpu.positive_score) else 0.0
    print(f"{kwargs or 'defaults'}: {len(cpu.positive_index)} positives, same: {same}, max score diff {diff:.1e}")
    assert same, f"CPU and CUDA assignments differ for {kwargs}"
PY
echo "check_cuda.sh: all CUDA paths ran"
