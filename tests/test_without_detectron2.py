"""adaanchor without Detectron2 (simulated in a subprocess): the framework-free parts import and run, the
Detectron2 parts fail at import with an error that names the feature and how to install Detectron2."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BLOCK = "import sys; sys.modules['detectron2'] = None; "  # `import detectron2` now raises ImportError


def _python(code):
    return subprocess.run([sys.executable, "-c", BLOCK + code], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_framework_free_parts_import_and_work():
    proc = _python(
        "import adaanchor, adaanchor.anchor, adaanchor.evaluation, adaanchor.data.synthetic, adaanchor.data.keypoints;"
        "import adaanchor.layers;"
        "from adaanchor.utils.dependencies import detectron2_available; assert not detectron2_available();"
        "import torch; from adaanchor.anchor import assign_adaptive_anchors;"
        "a = assign_adaptive_anchors(torch.full((1, 1, 8, 8), .5), torch.zeros(1, 1, 8, 8, 2),"
        " torch.tensor([[[[3.5, 3.5]]]]), torch.ones(1, 1, 1, dtype=torch.bool), topk=4);"
        "assert a.num_positives == 4; print('ok')"
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


@pytest.mark.parametrize(
    "module", ["adaanchor.config", "adaanchor.modeling", "adaanchor.engine", "adaanchor.data.datasets"]
)
def test_detectron2_parts_say_what_is_missing(module):
    proc = _python(f"import {module}")
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError") and f"{module} needs Detectron2" in last and "from source" in last
