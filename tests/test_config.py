"""Run configs: YAML round trip, precedence, type and value checks, and the paper's presets."""

import dataclasses

import pytest
import yaml

from resnetlab.errors import ConfigError
from resnetlab.train import PRESETS, RunConfig, config_from_dict, config_to_yaml, load_config
from resnetlab.train.config import parse_set


def test_defaults_round_trip_through_yaml():
    cfg = RunConfig()
    assert config_from_dict(yaml.safe_load(config_to_yaml(cfg))) == cfg


def test_every_field_round_trips_through_yaml():
    cfg = load_config(
        preset="cifar-paper",
        sets=[
            "model.name=resnet110",
            "model.overrides={shortcut: B, zero_init_residual: true}",
            "data.root=/data/c10",
            "data.image_size=24",
            "optim.nesterov=true",
            "schedule.final_lr=0.001",
            "tensorboard=true",
            "device=cuda:1",
        ],
    )
    text = config_to_yaml(cfg)
    again = config_from_dict(yaml.safe_load(text))
    assert again == cfg
    assert dataclasses.asdict(again) == yaml.safe_load(text)
    assert again.model.overrides == {"shortcut": "B", "zero_init_residual": True}


def test_precedence_preset_then_file_then_set_then_flags(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("batch_size: 32\noptim:\n  lr: 0.05\n  momentum: 0.5\nseed: 3\n")
    cfg = load_config(path, "cifar-paper", ["optim.lr=0.02", "seed=4"], {"optim.lr": 0.01})
    assert cfg.optim.lr == 0.01  # flag beats --set, the file and the preset
    assert cfg.seed == 4  # --set beats the file
    assert (cfg.batch_size, cfg.optim.momentum) == (32, 0.5)  # the file beats the preset
    assert cfg.optim.weight_decay == 1e-4 and cfg.iterations == 64000  # the preset fills the rest
    assert cfg.preset == "cifar-paper"


def test_the_preset_can_be_named_in_the_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("preset: fast\nepochs: 2\n")
    cfg = load_config(path)
    assert cfg.preset == "fast" and cfg.schedule.kind == "onecycle" and cfg.epochs == 2


# An evaluation every third epoch on CIFAR: 3 x the 781 full batches of 64 in 50,000 images.
CIFAR_EVERY_THIRD_EPOCH = 2343


@pytest.mark.parametrize(
    ("data", "sizes", "tta", "every"),
    [("cifar10-jpeg", [24, 28, 32], "flip", CIFAR_EVERY_THIRD_EPOCH),
     ("cifar100", [24, 28, 32], "flip", CIFAR_EVERY_THIRD_EPOCH),
     ("digits", [], None, 0), ("folder", [], None, 0)],
)  # fmt: skip
def test_fast_adds_resizing_flip_tta_and_sparser_evaluations_on_the_cifar_sets_only(
    data, sizes, tta, every
):
    for cfg in (
        load_config(preset="fast", sets=[f"data.name={data}"]),
        load_config(preset="fast", flags={"data.name": data}),  # --data, not --set
    ):
        got = (cfg.data.train_sizes, cfg.eval_tta, cfg.eval_every, cfg.epochs)
        assert got == (sizes, tta, every, 12)
        assert cfg.batch_size == 64  # what `every` counts batches of


def test_what_fast_adds_on_cifar_gives_way_to_what_the_user_sets(tmp_path):
    sets = ["data.name=cifar10", "data.train_sizes=[]", "eval_tta=null", "eval_every=0"]
    cfg = load_config(preset="fast", sets=sets)
    assert (cfg.data.train_sizes, cfg.eval_tta, cfg.eval_every) == ([], None, 0)
    path = tmp_path / "run.yaml"
    path.write_text("preset: fast\ndata:\n  name: cifar10-jpeg\n  train_sizes: [28, 32]\n")
    assert load_config(path).data.train_sizes == [28, 32]


def test_epochs_and_iterations_replace_each_other():
    assert load_config(preset="cifar-paper", flags={"epochs": 3}).iterations is None
    assert load_config(sets=["iterations=100"]).epochs is None
    with pytest.raises(ConfigError, match="epochs/iterations must be exactly one of the two"):
        load_config(sets=["epochs=null"])


def test_model_overrides_merge_key_by_key(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model:\n  overrides: {shortcut: B}\n")
    cfg = load_config(path, sets=["model.overrides.preact=true"])
    assert cfg.model.overrides == {"shortcut": "B", "preact": True}


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("optim.lrr=0.1", "--set optim.lrr=0.1: unknown key 'optim.lrr'; did you mean optim.lr?"),
        ("optim.lr=fast", "--set optim.lr=fast: optim.lr must be a number; got 'fast'"),
        ("epochs=2.5", "--set epochs=2.5: epochs must be an integer or null; got 2.5"),
        ("channels_last=1", "--set channels_last=1: channels_last must be true or false; got 1"),
        ("epochs=0", "epochs must be at least 1; got 0"),
        ("optim.momentum=1.5", "optim.momentum must be in [0, 1); got 1.5"),
        ("precision=fp8", "precision must be one of 'fp32', 'bf16', 'fp16', 'auto'; got 'fp8'"),
        ("schedule.kind=linear", "schedule.kind must be one of 'step', 'cosine', 'onecycle'"),
        ("device=tpu", "device must be auto, cpu, cuda, cuda:N or mps; got 'tpu'"),
        ("schedule.milestones=[48000, 32000]", "schedule.milestones must be increasing positive"),
        (
            "preset=slow",
            "preset must be one of 'cifar-paper', 'fast', 'finetune', 'imagenet-paper'; got 'slow'",
        ),
        ("model=resnet20", "--set model=resnet20: model must be a mapping"),
        ("lr", "--set expects KEY=VALUE (e.g. optim.lr=0.05); got 'lr'"),
        ("optim.lr=[", "--set optim.lr: cannot read '[' as a value"),
    ],
)
def test_bad_settings_name_the_key_and_what_is_allowed(item, message):
    with pytest.raises(ConfigError) as err:
        load_config(sets=[item])
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_bad_files_give_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yaml: config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  lr: [0.1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML at line \d"):
        load_config(bad)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: a config file must hold a mapping"):
        load_config(bad)
    bad.write_text("optim:\n  lr: 0.1\n  wd: 0.1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: unknown key 'optim\.wd'"):
        load_config(bad)


def test_numbers_in_exponent_notation_are_numbers(tmp_path):
    # YAML 1.1 reads 1e-3 (no dot) as a string; a float field takes it as the number it means.
    path = tmp_path / "run.yaml"
    path.write_text("optim:\n  lr: 1e-3\n")
    cfg = load_config(path, sets=["optim.weight_decay=5e-4"])
    assert (cfg.optim.lr, cfg.optim.weight_decay) == (0.001, 0.0005)
    with pytest.raises(ConfigError, match=r"optim\.lr must be a number; got 'nan'"):
        load_config(sets=["optim.lr=nan"])


def test_parse_set_reads_yaml_values():
    assert parse_set("schedule.milestones=[10, 20]") == {"schedule": {"milestones": [10, 20]}}
    assert parse_set("data.root=null") == {"data": {"root": None}}
    assert parse_set("model.name=resnet20") == {"model": {"name": "resnet20"}}


def test_cifar_paper_preset_is_section_4_2():
    cfg = load_config(preset="cifar-paper", sets=["model.name=resnet56"])
    assert (cfg.batch_size, cfg.iterations, cfg.epochs) == (128, 64000, None)
    assert (cfg.optim.lr, cfg.optim.momentum, cfg.optim.weight_decay) == (0.1, 0.9, 1e-4)
    assert (cfg.schedule.kind, cfg.schedule.milestones, cfg.schedule.gamma) == (
        "step",
        [32000, 48000],
        0.1,
    )
    assert cfg.data.val_fraction == 0.1 and cfg.data.augment
    assert cfg.optim.label_smoothing == 0.0 and not cfg.optim.nesterov
    assert cfg.schedule.warmup_until_train_error is None  # only from 110 layers on


@pytest.mark.parametrize(
    ("model", "overrides"),
    [("resnet110", {}), ("plain110", {}), ("resnet1202", {}), ("cifar_resnet", {"depth": 110})],
)
def test_cifar_paper_warms_up_110_layer_nets(model, overrides):
    sets = [f"model.name={model}"] + [f"model.overrides.{k}={v}" for k, v in overrides.items()]
    cfg = load_config(preset="cifar-paper", sets=sets)
    assert (cfg.schedule.warmup_lr, cfg.schedule.warmup_until_train_error) == (0.01, 0.8)


def test_the_warm_up_can_be_switched_off():
    cfg = load_config(
        preset="cifar-paper",
        sets=["model.name=resnet110", "schedule.warmup_until_train_error=null"],
    )
    assert cfg.schedule.warmup_until_train_error is None


def test_imagenet_paper_preset_is_section_3_4():
    cfg = load_config(preset="imagenet-paper", sets=["model.name=resnet50"])
    assert (cfg.batch_size, cfg.iterations) == (256, 600000)
    assert (cfg.optim.lr, cfg.optim.momentum, cfg.optim.weight_decay) == (0.1, 0.9, 1e-4)
    assert cfg.schedule.milestones == [150000, 300000, 450000] and cfg.data.name == "folder"


def test_every_preset_resolves():
    for name in PRESETS:
        assert load_config(preset=name).preset == name
