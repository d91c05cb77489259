"""benchmarks/paper_gpu.py: every stage's code runs on tiny configs, and without a GPU it counts the real models."""

import importlib.util
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "paper_gpu.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("paper_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def keep_threads():
    threads = torch.get_num_threads()  # main sets torch's thread count: give the other tests theirs back
    yield
    torch.set_num_threads(threads)


def test_every_stage_runs_on_tiny_configs_and_reports_finite_timings(bench, tmp_path, keep_threads, capsys):
    out = tmp_path / "paper_gpu.md"
    tables = bench.main([*"--tiny --device cpu --iterations 1 --warmup 0 --gen-iterations 1 --threads 1".split(), "--out", str(out)])

    measured = tables["measured"]
    assert list(measured.index) == list(bench.STAGES)
    for column in ("median (s)", "throughput"):
        assert all(math.isfinite(v) and v > 0 for v in measured[column]), measured[column]
    for ours in (bench.OURS, bench.OURS16):
        assert math.isfinite(measured.loc[ours, "ours / diffusers"]) and measured.loc[ours, "ours / diffusers"] > 0
    assert (measured["fits 24 GB"] == "n/a (CPU)").all()  # a CPU run claims no GPU memory figure
    estimate = tables["estimate"]
    assert all(math.isfinite(v) and v > 0 for v in estimate["activations fp16"])
    assert (estimate["activations fp32"] >= estimate["activations fp16"]).all()
    assert "need a GPU" in capsys.readouterr().out
    text = out.read_text()
    assert bench.THEIRS in text and bench.SEGMENTER in text and "need a GPU" in text


def test_cpu_mode_counts_the_real_models_without_allocating_them(bench, keep_threads):
    tables = bench.main(["--device", "cpu", "--no-activations", "--threads", "1"])

    params = tables["parameters"]["parameters (M)"]
    assert params["UNet (SD 1.5)"] == pytest.approx(859.52, abs=0.01)  # SD 1.5's published size
    assert params["ControlNet (21 channels)"] == pytest.approx(361.28, abs=0.01)  # 19 classes + unknown + depth
    assert params["VAE (SD 1.5)"] == pytest.approx(83.65, abs=0.01)
    assert params["text encoder (CLIP ViT-L/14)"] == pytest.approx(123.06, abs=0.01)
    assert params["  of which the MiT-B5 encoder"] == pytest.approx(81.44, abs=0.01)  # MiT-B5's 82 M
    assert params["segmenter (MiT-B5 + head)"] == pytest.approx(84.61, abs=0.01)  # with the 768-wide decode head
    assert "measured" not in tables

    # stage 1 at the paper settings: the UNet's float32 weight and gradient, AdamW's two moments, the EMA copy and
    # autocast's half copy (22 bytes a parameter), the VAE and text encoder frozen in fp16
    static = tables["estimate"].loc[bench.STAGE1, "static"]
    assert static == pytest.approx((859_520_964 * 22 + (83_653_863 + 123_060_480) * 2) / 2**30, rel=1e-6)


def test_live_bytes_counts_tensors_alive_at_once_and_attention_without_its_score_matrix(bench):
    def two_at_a_time():
        a = torch.empty(256, 1024)  # 1 MiB
        b = a + 1  # 2 MiB alive
        del a
        c = b * 2  # a is gone: still 2 MiB
        c.view(-1).add_(1)  # a view and an in-place op: nothing new

    assert bench._live_peak(two_at_a_time) == 2 * 2**20

    def attention():
        q = torch.empty(1, 1, 4096, 64)  # 1 MiB each; the scores would be 4096 x 4096 floats, 64 MiB
        F.scaled_dot_product_attention(q, torch.empty_like(q), torch.empty_like(q))

    assert bench._live_peak(attention) < 5 * 2**20  # q, k, v, the output and a logsumexp


def test_a_stage_out_of_memory_is_reported_and_the_others_still_run(bench, monkeypatch, keep_threads):
    def out_of_memory(self, stage):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(bench._Bench, "_train_diffusion", out_of_memory)
    argv = "--tiny --device cpu --stages stage1,segmenter --iterations 1 --warmup 0 --threads 1 --no-activations".split()
    measured = bench.main(argv)["measured"]

    assert list(measured.index) == [bench.STAGE1, bench.SEGMENTER]
    assert measured.loc[bench.STAGE1, "fits 24 GB"] == "OOM"
    assert "Tried to allocate" in measured.loc[bench.STAGE1, "note"]
    assert math.isfinite(measured.loc[bench.SEGMENTER, "throughput"])
