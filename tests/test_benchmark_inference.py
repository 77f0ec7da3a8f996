"""``benchmark.py inference`` end to end on the synthetic configs at a tiny input: every host, both anchors, stages
by people count, peak memory and the worst-case decoding figure, in the JSON of its last line."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("detectron2")

REPO = Path(__file__).resolve().parents[1]


def test_inference_benchmark_prints_stages_ratios_and_the_worst_case_as_json():
    proc = subprocess.run(
        [sys.executable, "projects/AdaAnchor/tools/benchmark.py", "inference", "--people", "1", "5", "--size", "64",
         "--repeats", "1", "--warmup", "0", "--worst-case-input", "128", "64", "--threads", "1",
         "--config-file", "configs/synthetic_dekr_adaanchor.yaml",
         "--ae-config-file", "configs/synthetic_ae_adaanchor.yaml",
         "--roi-config-file", "configs/synthetic_krcnn_adaanchor.yaml"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert figures["hosts"] == ["dekr", "ae", "roi"] and figures["people"] == [1, 5] and figures["ratio_people"] == 5
    for key in ("ratio", "ae_ratio", "roi_ratio", "forward_adaptive_over_plain", "dekr_worst_case_decode_ms",
                "ae_worst_case_decode_ms", "dekr_worst_case_unbounded_decode_ms"):  # fmt: skip
        assert math.isfinite(figures[key]) and figures[key] > 0, key
    assert figures["worst_case_target_ms"] == 10.0
    assert figures["cpu"]["dekr"]["worst_case"]["map"] == [16, 32]  # 64 x 128 input px at stride 4
    for host, config in (("dekr", "synthetic_dekr_adaanchor.yaml"), ("ae", "synthetic_ae_adaanchor.yaml"),
                         ("roi", "synthetic_krcnn_adaanchor.yaml")):  # fmt: skip
        out = figures["cpu"][host]
        assert out["config"] == config and set(out["people"]) == {"1", "5"}
        stages = [stage.replace(" ", "_") for stage in out["stages"]]
        assert stages[-1] == "mapping_back" and "backbone" in stages and "decoding" in stages
        for people, row in out["people"].items():
            assert math.isfinite(row["ratio"]) and row["ratio"] > 0
            for anchor in ("adaanchor", "heatmap"):
                figure = row[anchor]
                assert all(math.isfinite(figure[f"{s}_ms"]) and figure[f"{s}_ms"] >= 0 for s in stages)
                assert figure["end_to_end_ms"] == pytest.approx(sum(figure[f"{s}_ms"] for s in stages))  # 1 run
                assert figure["end_to_end_ms"] > 0 and figure["peak_memory_mb"] > 0
                assert 1 <= figure["poses"] <= 30, (host, people, anchor)
    assert figures["cpu"]["roi"]["people"]["5"]["heatmap"]["poses"] == 5  # one pose per given detection
    assert "worst case" in proc.stdout.replace("-", " ") and "target <= 10 ms" in proc.stdout
