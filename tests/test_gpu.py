"""The CUDA branches of the code, on a GPU: bf16 and fp16 (loss scaling) steps, channels-last,
``torch.compile``, the device-resident and folder loaders on ``cuda``, a resume on the GPU, NCCL
under ``torchrun``, and eval and export of a GPU-trained checkpoint.

Every test is marked ``gpu`` and skips without CUDA (conftest). The in-process ones build the run
``resnetlab train`` builds (``build_run(cfg, None, World())``: it writes nothing) and take
``train_step``, the one step ``train`` and ``bench train`` share. Comparisons between two numeric
paths turn TF32 off, so that fp32 means fp32.
"""

from __future__ import annotations

import io
import itertools
import json
import subprocess
import sys

import pytest
import torch
from PIL import Image

from resnetlab.cli import main
from resnetlab.data import load_dataset, make_loader
from resnetlab.data.augment import crop_flip, draw_crop_flip
from resnetlab.export import export_checkpoint
from resnetlab.train.checkpoint import rng_state, set_rng_state
from resnetlab.train.config import load_config
from resnetlab.train.distributed import World, unwrap
from resnetlab.train.loop import train_step
from resnetlab.train.precision import resolve_precision
from resnetlab.train.run import Run, build_run
from resnetlab.train.weights import model_from_checkpoint
from train_runs import TIMEOUT_S, TINY, checkpoint, env, train, train_until_killed

pytestmark = pytest.mark.gpu


@pytest.fixture
def no_tf32():
    """fp32 convs and matmuls in full fp32 (cuDNN's TF32 is on by default)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def tiny_run(**values) -> Run:
    """A ResNet-8 on 16x16 synthetic images, batch 32, on the GPU; ``values`` are config keys."""
    base = {
        "model.name": "cifar_resnet",
        "model.overrides.depth": 8,
        "data.name": "synthetic",
        "data.image_size": 16,
        "batch_size": 32,
        "iterations": 100,
        "device": "cuda",
    }
    sets = [f"{k}={v}" for k, v in (base | values).items()]
    run = build_run(load_config(sets=sets), None, World())
    run.model.train()
    return run


def params(run: Run) -> dict[str, torch.Tensor]:
    return {k: p.detach().clone() for k, p in unwrap(run.model).named_parameters()}


def momenta(run: Run) -> list[torch.Tensor]:
    return [s["momentum_buffer"].clone() for s in run.optimizer.state.values()]


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def test_auto_precision_is_bf16_where_the_gpu_computes_it():
    device = torch.device("cuda")
    major, _ = torch.cuda.get_device_capability(device)
    assert resolve_precision("auto", device) == ("bf16" if major >= 8 else "fp16")


def test_bf16_step_computes_in_bf16_and_updates_fp32_weights_like_fp32(no_tf32):
    bf16, fp32 = tiny_run(precision="bf16"), tiny_run(precision="fp32")
    assert bf16.precision == "bf16" and not bf16.scaler.is_enabled()
    start = params(bf16)
    for name, p in params(fp32).items():
        assert torch.equal(p, start[name])  # the same seed, the same initial weights
    dtypes = []
    model = unwrap(bf16.model)
    hook = model.conv1.register_forward_hook(lambda m, i, out: dtypes.append(out.dtype))
    images, labels = next(iter(bf16.train_loader.epoch(0)))
    train_step(bf16, images, labels)
    hook.remove()
    train_step(fp32, images, labels)
    assert dtypes == [torch.bfloat16]  # autocast reached the convs
    after, want = params(bf16), params(fp32)
    for name, p in after.items():
        assert p.dtype == torch.float32 and p.is_cuda and torch.isfinite(p).all(), name
        assert not torch.equal(p, start[name]), f"{name} was not updated"
    # bf16 keeps 8 significant bits: the update is the fp32 one to about 1%, not exactly.
    update = torch.cat([(after[k] - start[k]).flatten() for k in after])
    reference = torch.cat([(want[k] - start[k]).flatten() for k in want])
    assert 0 < relative(update, reference) < 0.1


def test_fp16_loss_scaler_skips_an_overflowing_step_and_halves_its_scale():
    run = tiny_run(precision="fp16")
    assert run.scaler.is_enabled()
    batches = run.train_loader.epoch(0)
    before = params(run)
    train_step(run, *next(batches))  # a normal step: it applies, and momentum buffers exist
    assert run.scaler.get_scale() == 2.0**16  # torch's initial scale, grown only after 2000
    first = params(run)
    assert all(not torch.equal(first[k], before[k]) for k in first)

    # A scale so large that the fp16 gradients overflow to inf on the way back.
    run.scaler.update(2.0**120)
    moments = momenta(run)
    train_step(run, *next(batches))
    assert run.scaler.get_scale() == 2.0**119  # backed off by torch's factor 0.5
    for name, p in params(run).items():
        assert torch.equal(p, first[name]), f"{name} changed in the skipped step"
    for got, want in zip(momenta(run), moments, strict=True):
        assert torch.equal(got, want)

    run.scaler.update(2.0**16)
    train_step(run, *next(batches))  # back to a sane scale, steps apply again
    assert any(not torch.equal(p, first[k]) for k, p in params(run).items())


def test_channels_last_holds_nhwc_weights_and_batches_and_trains_as_nchw(no_tf32):
    nhwc, nchw = tiny_run(channels_last=True), tiny_run(channels_last=False)
    images, labels = next(iter(nhwc.train_loader.epoch(0)))
    plain_images, plain_labels = next(iter(nchw.train_loader.epoch(0)))
    assert images.is_contiguous(memory_format=torch.channels_last)
    assert not plain_images.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(images, plain_images) and torch.equal(labels, plain_labels)
    train_step(nhwc, images, labels)
    train_step(nchw, plain_images, plain_labels)
    got, want = params(nhwc), params(nchw)
    convs = [k for k, p in got.items() if p.dim() == 4]
    assert convs and all(got[k].is_contiguous(memory_format=torch.channels_last) for k in convs)
    for name, p in got.items():
        torch.testing.assert_close(p, want[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.slow
def test_compiled_steps_match_eager_steps(no_tf32):
    compiled, eager = tiny_run(compile=True), tiny_run(compile=False)
    assert unwrap(compiled.model) is not compiled.model  # really wrapped by torch.compile
    for images, labels in itertools.islice(eager.train_loader.epoch(0), 3):
        train_step(compiled, images, labels)
        train_step(eager, images, labels)
    got, want = params(compiled), params(eager)
    for name, p in got.items():
        torch.testing.assert_close(p, want[name], rtol=1e-4, atol=1e-5, msg=name)


def test_device_loader_on_cuda_gives_the_cpu_batches():
    ds = load_dataset("synthetic", "train", image_size=16)
    cpu = make_loader(ds, 64, train=True, device="cpu", seed=3)
    gpu = make_loader(ds, 64, train=True, device="cuda", seed=3, channels_last=True)
    assert len(cpu) == len(gpu) > 1
    for epoch in (0, 1):
        pairs = zip(cpu.epoch(epoch), gpu.epoch(epoch), strict=True)
        for (x_cpu, y_cpu), (x_gpu, y_gpu) in pairs:
            assert x_gpu.is_cuda and y_gpu.is_cuda
            assert torch.equal(y_gpu.cpu(), y_cpu)
            # The same crops and flips; the normalisation to float rounding (one ulp at most).
            torch.testing.assert_close(x_gpu.cpu(), x_cpu, rtol=0, atol=1e-6)


def test_crop_flip_on_cuda_equals_the_cpu_exactly():
    n = 256
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 16, 16), dtype=torch.uint8, generator=gen)
    p = draw_crop_flip(n, pad=4, seed=0, epoch=5)
    assert p.flip.any() and not p.flip.all() and (p.dy != 4).any()  # real crops and flips
    want = crop_flip(images, p.dy, p.dx, p.flip, 4)
    got = crop_flip(images.cuda(), p.dy.cuda(), p.dx.cuda(), p.flip.cuda(), 4)
    assert got.is_cuda and torch.equal(got.cpu(), want)
    assert not torch.equal(want, images)


def test_folder_loader_pins_and_delivers_the_cpu_batches_on_cuda(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNETLAB_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "images"
    gen = torch.Generator().manual_seed(0)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(6):
            pixels = torch.randint(0, 256, (40, 48, 3), dtype=torch.uint8, generator=gen)
            Image.fromarray(pixels.numpy()).save(root / c / f"{i}.png")
    ds = load_dataset("folder", root=root, image_size=32)
    common = {"train": True, "seed": 1, "workers": 1}
    cpu = make_loader(ds, 4, device="cpu", **common)
    gpu = make_loader(ds, 4, device="cuda", **common)
    pairs = list(zip(cpu.epoch(0), gpu.epoch(0), strict=True))
    assert len(pairs) == 3  # 12 images, batch 4
    for (x_cpu, y_cpu), (x_gpu, y_gpu) in pairs:
        assert x_gpu.is_cuda and torch.equal(y_gpu.cpu(), y_cpu)
        torch.testing.assert_close(x_gpu.cpu(), x_cpu, rtol=0, atol=1e-6)


def test_rng_states_that_a_resume_loads_onto_the_gpu_are_restored():
    saved = rng_state()
    want_cpu, want_gpu = torch.rand(4), torch.rand(4, device="cuda")
    buf = io.BytesIO()
    torch.save(saved, buf)
    buf.seek(0)
    loaded = torch.load(buf, map_location="cuda", weights_only=True)  # as --resume loads it
    assert loaded["torch"].is_cuda
    set_rng_state(loaded)
    assert torch.equal(torch.rand(4), want_cpu)
    assert torch.equal(torch.rand(4, device="cuda"), want_gpu)


GPU_TINY = [*TINY, "--device", "cuda"]


def _records(run_dir):
    """metrics.jsonl without the timings."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    drop = ("wall_s", "img_per_s")
    return [{k: v for k, v in json.loads(x).items() if k not in drop} for x in lines]


def _same_state(a: dict, b: dict) -> None:
    for key, tensor in a["state"]["model"].items():
        assert tensor.is_cuda and torch.equal(tensor, b["state"]["model"][key]), key
    for slot, state in a["state"]["optimizer"]["state"].items():
        other = b["state"]["optimizer"]["state"][slot]
        assert torch.equal(state["momentum_buffer"], other["momentum_buffer"])


@pytest.mark.slow
def test_a_run_killed_on_the_gpu_resumes_bit_identically(tmp_path):
    n = 200  # 2.2 epochs of the digits at batch 16: the resume crosses an epoch
    args = [*GPU_TINY, "--iterations", str(n), "--batch-size", "16",
            "--set", "checkpoint_every=10", "--set", "eval_every=50"]  # fmt: skip
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    train([*args, "--out", str(straight)])
    train_until_killed([*args, "--out", str(killed)], killed / "checkpoints" / "step-00000020.pt")
    stopped_at = checkpoint(killed)["progress"]["iteration"]
    assert 0 < stopped_at < n
    train(["--resume", str(killed)])
    a, b = checkpoint(straight), checkpoint(killed)
    assert b["progress"]["iteration"] == n
    _same_state(a, b)
    assert _records(straight) == _records(killed)


# One GPU holds one NCCL rank. The child treats its one-process world as distributed, so that
# the process group, DDP, SyncBatchNorm and the collectives of a multi-GPU run are the ones taken,
# and prints what it saw.
NCCL_CHILD = """
import json, sys
import torch.distributed as dist
from resnetlab.train import distributed

distributed.World.distributed = property(lambda self: True)
seen, _init, _wrap = {}, distributed.init, distributed.wrap

def init(world, device):
    _init(world, device)
    seen["backend"] = dist.get_backend()

def wrap(model, world, device, sync_bn):
    wrapped = _wrap(model, world, device, sync_bn)
    seen["wrapper"] = type(wrapped).__name__
    norms = {type(m).__name__ for m in wrapped.modules() if "Norm" in type(m).__name__}
    seen["batch_norms"] = sorted(norms)
    return wrapped

distributed.init, distributed.wrap = init, wrap
from resnetlab.cli import main
code = main(["train", *sys.argv[1:]])
print("SEEN " + json.dumps(seen))
sys.exit(code)
"""


@pytest.mark.slow
def test_one_process_nccl_ddp_under_torchrun_takes_the_steps_of_a_plain_run(tmp_path):
    args = [*GPU_TINY, "--iterations", "30", "--batch-size", "16", "--set", "sync_bn=true"]
    child = tmp_path / "nccl_child.py"
    child.write_text(NCCL_CHILD)
    ddp, plain = tmp_path / "ddp", tmp_path / "plain"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=1"]
    proc = subprocess.run(
        [*launcher, str(child), *args, "--out", str(ddp)],
        env=env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    seen = json.loads(proc.stdout.split("SEEN ", 1)[1].splitlines()[0])
    assert seen["backend"] == "nccl" and seen["wrapper"] == "DistributedDataParallel"
    assert seen["batch_norms"] == ["SyncBatchNorm"]  # every BN layer converted
    train([*args, "--out", str(plain)])
    # One rank: the all-reduce of the gradients and of the statistics is the identity.
    _same_state(checkpoint(plain), checkpoint(ddp))


@pytest.fixture(scope="module")
def gpu_trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("gpu") / "run"
    train([*GPU_TINY, "--iterations", "40", "--batch-size", "32", "--out", str(run_dir)])
    return run_dir


def test_a_gpu_trained_checkpoint_exports_to_onnx_and_torchscript(gpu_trained, tmp_path):
    weights = checkpoint(gpu_trained)["state"]["model"]
    assert all(t.is_cuda for t in weights.values())  # written from the GPU
    for fmt, name in (("onnx", "m.onnx"), ("torchscript", "m.pt")):
        path, record = export_checkpoint(gpu_trained, fmt, tmp_path / name)
        assert path.is_file() and (tmp_path / f"{name}.json").is_file()
        assert 0 <= record["check"]["max_abs_diff"] < 1e-4, fmt
        assert record["iteration"] == 40


def test_a_gpu_trained_checkpoint_evaluates_alike_on_cuda_and_cpu(gpu_trained, tmp_path, no_tf32):
    records = {}
    for device in ("cuda", "cpu"):
        out = tmp_path / device
        argv = ["eval", str(gpu_trained), "--device", device, "--out", str(out)]
        assert main(argv) == 0
        records[device] = json.loads((out / "eval.json").read_text())
    cuda, cpu = records["cuda"], records["cpu"]
    assert cuda["samples"] == cpu["samples"] == 360  # the digits' test split
    # The same answers up to a near-tie flipped by float rounding: at most one image.
    assert abs(cuda["top1_error"] - cpu["top1_error"]) * cuda["samples"] <= 1
    assert cuda["loss"] == pytest.approx(cpu["loss"], rel=1e-3)
    on_gpu, ckpt = model_from_checkpoint(gpu_trained, map_location="cuda")
    on_cpu, _ = model_from_checkpoint(gpu_trained)
    x = torch.randn(8, ckpt["model"]["in_channels"], 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(on_gpu(x.cuda()).cpu(), on_cpu(x), rtol=1e-4, atol=1e-4)
