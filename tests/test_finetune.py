"""Fine-tuning: a new head for other classes, frozen parts (BN statistics included), the
backbone's lower rate and the weight decay spared on BN and biases, the finetune preset, and a
resume that stays bit-identical."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from torch import nn

from eval_support import run_main
from resnetlab import CheckpointError, ConfigError, create_model
from resnetlab.train import load_config
from resnetlab.train.distributed import World
from resnetlab.train.finetune import FrozenBatchNorm2d, freeze, model_parts
from resnetlab.train.loop import fit, train_step
from resnetlab.train.optim import param_groups
from resnetlab.train.run import build_run
from resnetlab.train.weights import load_weights, save_weights
from use_support import digits_folder, pretrained_on_digits, tiny_sets

SUBSET = (3, 5, 8, 9)  # the classes fine-tuned on: four of the ten the weights were trained on
FROZEN = ("stem", "layer1", "layer2")
FINETUNE_ITERATIONS = 60  # batch 32: 3.3 epochs of the 575 training images of the four classes
# Measured (AMD EPYC, AVX2, torch 2.13.0 CPU, deterministic, one run): 98.62% test accuracy, 2
# wrong of the 145 test images of the four classes; the pretrained net: 97.78% on all ten.
MIN_ACCURACY = 0.93


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("RESNETLAB_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    return pretrained_on_digits(tmp_path_factory.getbasetemp())


def _finetune_args(weights, root, out, extra=()):
    return [
        "train",
        "--weights",
        str(weights),
        "--preset",
        "finetune",
        "--freeze",
        ",".join(FROZEN),
        "--data",
        "folder",
        "--data-dir",
        str(root),
        "--iterations",
        str(FINETUNE_ITERATIONS),
        "--out",
        str(out),
        *[a for s in tiny_sets() if not s.startswith("data.image_size") for a in ("--set", s)],
        "--image-size",
        "16",
        # The preset's folder augmentation is the ImageNet recipe: a random crop of 8% to 100%
        # of the image, which on 16x16 digits often keeps too little of the digit.
        "--set",
        "data.augment=false",
        *extra,
    ]


def test_fine_tuning_keeps_frozen_parts_bit_identical_and_trains_a_new_head(
    pretrained, tmp_path, capsys
):
    weights = pretrained / "checkpoints" / "last.pt"
    before = torch.load(weights, weights_only=True)["state"]["model"]
    root = digits_folder(tmp_path.parent, SUBSET)
    out = tmp_path / "ft"
    code, stdout, err = run_main(_finetune_args(weights, root, out), capsys)
    assert code == 0, err
    # one line names the new keys and how many tensors came from the file
    (line,) = [line for line in stdout.splitlines() if "new classifier" in line]
    assert "new classifier for 4 classes (the file's is for 10): fc.weight, fc.bias" in line
    assert line.endswith(f"the other {len(before) - 2} tensors from the file")

    after = torch.load(out / "checkpoints" / "last.pt", weights_only=True)["state"]["model"]
    frozen = [k for k in before if k.split(".")[0] in ("conv1", "bn1", "layer1", "layer2")]
    assert len(frozen) == 6 + 12 + 12  # stem conv and BN; one block in each stage (option A)
    for key in frozen:  # weights and BN statistics alike, although model.train() ran
        assert torch.equal(after[key], before[key]), key
    trained = [k for k in before if k.startswith("layer3.") and "num_batches" not in k]
    assert all(not torch.equal(after[k], before[k]) for k in trained)
    assert (
        after["layer3.0.bn1.num_batches_tracked"]
        == FINETUNE_ITERATIONS + before["layer3.0.bn1.num_batches_tracked"]
    )
    assert after["fc.weight"].shape == (4, 64) and before["fc.weight"].shape == (10, 64)
    cfg = load_config(out / "config.yaml")
    start = build_run(cfg, None, World()).model.state_dict()  # the run's state at iteration 0
    assert torch.equal(start["layer3.0.conv1.weight"], before["layer3.0.conv1.weight"])
    assert not torch.equal(after["fc.weight"], start["fc.weight"])

    summary = json.loads((out / "summary.json").read_text())
    accuracy = 1 - summary["final"]["test_error"]
    assert accuracy >= MIN_ACCURACY, accuracy
    assert cfg.model.freeze == list(FROZEN) and cfg.optim.backbone_lr_scale == 0.1


def test_resume_of_a_fine_tuning_run_is_bit_identical(pretrained, tmp_path):
    root = digits_folder(tmp_path.parent, SUBSET)
    sets = tiny_sets(
        [
            f"model.weights={pretrained / 'checkpoints' / 'last.pt'}",
            "model.freeze=[stem, layer1]",
            "data.name=folder",
            f"data.root={root}",
            "checkpoint_every=10",
            "keep_last=10",
            "eval_train_at_end=false",
        ]
    )
    cfg = load_config(preset="finetune", sets=sets, flags={"iterations": 30})
    straight = tmp_path / "straight"
    fit(cfg, straight)
    # A run stopped after its 10th step: its folder as a kill would leave it at that checkpoint.
    stopped = tmp_path / "stopped"
    shutil.copytree(straight, stopped)
    (stopped / "summary.json").unlink()
    ckpts = stopped / "checkpoints"
    for name in ("last.pt", "best.pt", "step-00000020.pt", "step-00000030.pt"):
        (ckpts / name).unlink()
    shutil.copy(ckpts / "step-00000010.pt", ckpts / "last.pt")
    fit(cfg, stopped, resume=True)
    a, b = (
        torch.load(d / "checkpoints" / "last.pt", weights_only=True) for d in (straight, stopped)
    )
    assert b["progress"]["iteration"] == 30
    for key, tensor in a["state"]["model"].items():
        assert torch.equal(tensor, b["state"]["model"][key]), key
    for slot, state in a["state"]["optimizer"]["state"].items():
        assert torch.equal(
            state["momentum_buffer"], b["state"]["optimizer"]["state"][slot]["momentum_buffer"]
        )
    groups = [(g["lr_scale"], g["weight_decay"]) for g in b["state"]["optimizer"]["param_groups"]]
    assert groups == [(0.1, 1e-4), (0.1, 0.0), (1.0, 1e-4), (1.0, 0.0)]


def test_frozen_batch_norm_is_eval_mode_batch_norm_whatever_the_mode():
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(4)
    bn.running_mean.normal_()
    bn.running_var.uniform_(0.5, 2)
    bn.weight.data.normal_()
    keys = list(bn.state_dict())
    x = torch.randn(3, 4, 5, 5)
    expected = bn.eval()(x)
    frozen = FrozenBatchNorm2d(bn)
    frozen.train()
    assert not frozen.training and list(frozen.state_dict()) == keys
    state = {k: v.clone() for k, v in frozen.state_dict().items()}
    assert torch.equal(frozen(x), expected)
    assert all(torch.equal(v, frozen.state_dict()[k]) for k, v in state.items())
    assert not frozen.weight.requires_grad and not frozen.bias.requires_grad


def test_parts_of_the_registry_models():
    with torch.device("meta"):
        r50, r20, signs = (create_model(n) for n in ("resnet50", "resnet20", "resnet50_signs"))
        pre = create_model("resnet20", preact=True)
    assert list(model_parts(r50)) == ["stem", "layer1", "layer2", "layer3", "layer4", "backbone"]
    assert model_parts(r50)["stem"] == ["conv1", "bn1", "relu", "maxpool"]
    assert list(model_parts(r20)) == ["stem", "layer1", "layer2", "layer3", "backbone"]
    assert model_parts(pre)["layer3"] == ["layer3", "bn_final"]
    assert list(model_parts(signs))[1:5] == ["stage2", "stage3", "stage4", "stage5"]
    assert "fc" not in model_parts(r20)["backbone"]
    with pytest.raises(
        ConfigError, match=r"model.freeze: ResNet has no part 'layer4' \(its parts: stem"
    ):
        freeze(create_model("resnet20"), ["layer4"])


def test_backbone_freezes_all_but_the_head():
    model = create_model("resnet20")
    assert freeze(model, ["backbone"]) == [
        "conv1",
        "bn1",
        "relu",
        "maxpool",
        "layer1",
        "layer2",
        "layer3",
        "bn_final",
        "avgpool",
    ]
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["fc.weight", "fc.bias"]
    assert sum(isinstance(m, FrozenBatchNorm2d) for m in model.modules()) == 19
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_param_groups_split_the_backbone_rate_and_spare_bn_and_biases():
    model = create_model("resnet20")
    cfg = load_config().optim
    (only,) = param_groups(model, cfg)  # the defaults: the paper's single group
    assert only["params"] == list(model.parameters()) and only["lr_scale"] == 1.0
    cfg = load_config(sets=["optim.backbone_lr_scale=0.1", "optim.no_decay_norm=true"]).optim
    groups = param_groups(model, cfg)
    names = {id(p): n for n, p in model.named_parameters()}
    by = {(g["lr_scale"], g["weight_decay"]): [names[id(p)] for p in g["params"]] for g in groups}
    assert by[(1.0, 1e-4)] == ["fc.weight"] and by[(1.0, 0.0)] == ["fc.bias"]
    assert all(n.endswith((".bias", "bn1.weight", "bn2.weight")) for n in by[(0.1, 0.0)])
    assert all("conv" in n for n in by[(0.1, 1e-4)])
    assert len(by[(0.1, 0.0)]) == 2 * 19 and len(by[(0.1, 1e-4)]) == 19  # BN pairs; convs
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_each_group_follows_the_schedule_in_proportion():
    sets = tiny_sets(["data.name=synthetic", "optim.backbone_lr_scale=0.25", "batch_size=16"])
    cfg = load_config(sets=[*sets, "schedule.kind=cosine"], flags={"iterations": 4})
    run = build_run(cfg, None, World())
    images, labels = next(iter(run.train_loader.epoch(0)))
    for step in range(3):
        lr = train_step(run, images, labels)
        assert lr == run.schedule.lr_at(step)
        assert sorted(g["lr"] for g in run.optimizer.param_groups) == [0.25 * lr, lr]


def test_a_new_head_only_where_the_classes_differ(tmp_path):
    torch.manual_seed(0)
    ten = create_model("resnet20")
    save_weights(ten, tmp_path / "w.safetensors")
    four = create_model("resnet20", num_classes=4)
    fresh = four.fc.weight.detach().clone()
    with pytest.raises(CheckpointError, match=r"shape: fc\.weight, fc\.bias"):
        load_weights(four, tmp_path / "w.safetensors")
    said = []
    load_weights(four, tmp_path / "w.safetensors", new_head=True, say=said.append)
    assert torch.equal(four.fc.weight, fresh) and torch.equal(four.conv1.weight, ten.conv1.weight)
    assert said == [
        f"{tmp_path / 'w.safetensors'}: new classifier for 4 classes (the file's is for 10): "
        f"fc.weight, fc.bias initialised here; the other {len(ten.state_dict()) - 2} tensors "
        "from the file"
    ]
    said.clear()
    load_weights(
        create_model("resnet20"), tmp_path / "w.safetensors", new_head=True, say=said.append
    )
    assert said == []  # the same classes: every tensor from the file, nothing to say
    with pytest.raises(CheckpointError, match=r"shape: conv1\.weight"):  # any other mismatch fails
        load_weights(
            create_model("resnet20", in_channels=1), tmp_path / "w.safetensors", new_head=True
        )


def test_freeze_options_are_checked(capsys):
    assert load_config(flags={"model.freeze": ["stem", "layer1"]}).model.freeze == [
        "stem",
        "layer1",
    ]
    with pytest.raises(ConfigError, match=r"model.freeze must be part names \(stem, layer1"):
        load_config(sets=["model.freeze=[head]"])
    with pytest.raises(ConfigError, match=r"model\.freeze must be a list of strings; got 'stem'"):
        load_config(sets=["model.freeze=stem"])
    code, _, err = run_main(["train", "--freeze", ",", "--iterations", "1"], capsys)
    assert code == 2 and "argument --freeze: expected part names such as stem,layer1" in err
