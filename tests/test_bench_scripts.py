"""The scripts in benchmarks/ run in their --quick modes and print consistent Markdown reports."""

import dataclasses
import json

import pytest

from bench_support import load_benchmark, table_rows
from resnetlab.models import create_model


def test_bench_train_script_quick(capsys, tmp_path):
    bench_train = load_benchmark("bench_train")
    out_json = tmp_path / "train.json"
    assert bench_train.main(["--quick", "--ref-workers", "0", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "Command: `python" in out and "Measured peak" in out
    rows = json.loads(out_json.read_text())["rows"]
    assert rows[0]["row"].startswith("reference (DataLoader, 0 workers")
    assert rows[0]["ratio"] == 1.0 and len(rows) == 4
    for r in rows:
        assert r["img_per_s"]["median"] > 0 and r["achieved_flop_per_s"] > 0
        assert r["ratio"] == pytest.approx(
            r["img_per_s"]["median"] / rows[0]["img_per_s"]["median"]
        )
    assert len(table_rows(out)) == 4


def test_bench_infer_script_quick_checks_every_form_against_the_reference(capsys, tmp_path):
    bench_infer = load_benchmark("bench_infer")
    out_json = tmp_path / "infer.json"
    argv = ["--quick", "--variants", "folded", "bf16", "--json", str(out_json)]
    assert bench_infer.main(argv) == 0
    rows = json.loads(out_json.read_text())["rows"]
    assert [r["variant"] for r in rows] == ["reference", "folded", "bf16"]
    assert all(r["status"] == "ok" and r["img_per_s"] > 0 for r in rows)
    assert rows[0]["max_rel_err"] == 0 and rows[1]["max_rel_err"] < 1e-4
    out = capsys.readouterr().out
    assert [row[1] for row in table_rows(out)] == ["reference", "folded", "bf16"]


def test_bench_memory_script_quick_reports_the_growth_it_judges(capsys, tmp_path):
    bench_memory = load_benchmark("bench_memory")
    out_json = tmp_path / "memory.json"
    rc = bench_memory.main(["--quick", "--json", str(out_json)])
    data = json.loads(out_json.read_text())
    samples, growth = data["samples"], data["growth"]
    assert [s["step"] for s in samples] == [0, 10, 20, 30, 40]
    assert all(s["rss_mib"] > 0 and s["peak_rss_mib"] > 0 for s in samples)
    first = next(s for s in samples if s["step"] == 10)
    assert growth["rss_growth_mib"] == samples[-1]["rss_mib"] - first["rss_mib"]
    worst = max(growth["rss_growth_mib"], growth["peak_growth_mib"])
    assert rc == (0 if worst <= 16 else 1)
    assert ("**flat**" if rc == 0 else "**GROWING**") in capsys.readouterr().out


def test_time_to_accuracy_skips_with_a_reason_without_the_data(capsys, tmp_path):
    tta = load_benchmark("time_to_accuracy")
    assert tta.main(["--data-dir", str(tmp_path / "missing")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("skipped: the CIFAR-10 JPEG copy is not at") and "missing" in out


def test_time_to_accuracy_curve_reads_the_eval_records(tmp_path):
    tta = load_benchmark("time_to_accuracy")
    records = [
        {"kind": "train", "iteration": 5, "wall_s": 30.0},
        {"kind": "eval", "iteration": 10, "epoch": 1.0, "test_error": 0.25, "wall_s": 60.0},
        {"kind": "eval", "iteration": 20, "epoch": 2.0, "test_error": 0.125, "wall_s": 150.0},
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert tta.eval_curve(tmp_path) == [
        {"epoch": 1.0, "wall_min": 1.0, "test_acc": 0.75},
        {"epoch": 2.0, "wall_min": 2.5, "test_acc": 0.875},
    ]


@pytest.mark.slow
def test_time_to_accuracy_quick_trains_and_prints_the_curve(capsys, tmp_path):
    tta = load_benchmark("time_to_accuracy")
    assert tta.main(["--quick", "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "preset `fast`" in out and "| 1 |" in out
    assert "90% not reached" in out or "90% test accuracy reached" in out


def test_time_to_accuracy_medians_and_time_to_target_over_seeds():
    tta = load_benchmark("time_to_accuracy")
    points = [((1.0, 0.5), (2.0, 0.8)), ((1.5, 0.6), (2.5, 0.7)), ((3.0, 0.4), (4.0, 0.9))]
    curves = [
        [{"epoch": e + 1, "wall_min": w, "test_acc": a} for e, (w, a) in enumerate(seed)]
        for seed in points
    ]
    med = tta.median_curve(curves)
    assert [p["wall_min"] for p in med] == [1.5, 2.5]
    assert [p["test_acc"] for p in med] == [0.5, 0.8]
    assert (med[1]["acc_min"], med[1]["acc_max"]) == (0.7, 0.9)
    assert [tta.time_to(c, 0.75) for c in curves] == [2.0, None, 4.0]


def test_time_to_accuracy_ablation_turns_off_each_ingredient_the_recipe_uses():
    tta = load_benchmark("time_to_accuracy")
    args = tta.argparse.Namespace(ablation=True)
    preset, sets = tta.RECIPES["r32-30min"]
    out = tta.variants(args, [preset, *sets])
    assert set(out) == {"recipe", "without ema_decay", "without eval_tta",
                        "without model.overrides.drop_path_rate", "without data.cutmix_alpha",
                        "without optim.label_smoothing"}  # fmt: skip
    for name, v in out.items():
        if name != "recipe":
            cfg = tta.load_config(preset=v[0], sets=v[1:])
            assert not tta._is_on(cfg, name.removeprefix("without "))
    for preset, sets in tta.RECIPES.values():  # every recipe resolves
        tta.load_config(preset=preset, sets=sets)


def test_the_fast_preset_on_cifar_is_the_recipe_that_won_at_nine_minutes():
    tta = load_benchmark("time_to_accuracy")
    data = ["data.name=cifar10-jpeg"]
    configs = [
        tta.load_config(preset=preset, sets=[*sets, *data])
        for preset, sets in (tta.RECIPES["fast"], tta.RECIPES["r20-9min-e3"])
    ]
    assert configs[0] == configs[1]


def resolve(recipe, *extra):
    """The config a time_to_accuracy.py recipe trains on cifar10-jpeg, with more --set strings."""
    tta = load_benchmark("time_to_accuracy")
    preset, sets = tta.RECIPES[recipe]
    return tta.load_config(preset=preset, sets=[*sets, *extra, "data.name=cifar10-jpeg"])


def test_recipes_measured_before_fast_changed_still_resolve_to_the_runs_recorded():
    old = resolve("r20-9min")  # `fast` before its CIFAR additions: every epoch, 32 px, no TTA
    assert (old.data.train_sizes, old.eval_every, old.eval_tta) == ([], 0, "flip")
    amx = resolve("r20-9min-amx")  # evaluated every epoch, as its 12-row table in BENCHMARKS.md
    assert (amx.data.train_sizes, amx.eval_every, amx.eval_tta) == ([24, 28, 32], 0, "flip")
    # BENCHMARKS.md's command for r20-9min-e3 is r20-9min-amx with eval_every=2343
    assert resolve("r20-9min-amx", "eval_every=2343") == resolve("r20-9min-e3")


def test_the_zen4_recipes_are_the_commands_benchmarks_md_records():
    # BENCHMARKS.md records them as `--recipe fast` with --set strings, run before they had names
    b128 = ["batch_size=128", "optim.lr=0.4"]
    assert resolve("r20-b128-16px") == resolve(
        "fast", *b128, "data.train_sizes=[16, 24, 32]", "eval_every=1560"
    )
    four = resolve("r20-b128-4sizes")
    assert four == resolve("fast", *b128, "data.train_sizes=[16, 20, 24, 32]", "eval_every=2340")
    # an evaluation every sixth of the 12 epochs: 390 full batches of 128 in 50,000 images
    assert (four.batch_size, four.epochs, four.eval_every) == (128, 12, 6 * (50_000 // 128))
    assert (four.eval_tta, four.optim.lr) == ("flip", 0.4)
    fast16 = resolve("fast-16px")
    assert fast16 == resolve("fast", "data.train_sizes=[16, 24, 28, 32]", "eval_every=4686")
    # `fast` but for its sizes and evaluations: batch 64 at lr 0.2, 12 epochs, flip TTA; an
    # evaluation every sixth epoch of 781 full batches of 64
    assert (fast16.batch_size, fast16.optim.lr, fast16.epochs) == (64, 0.2, 12)
    assert (fast16.eval_every, fast16.eval_tta) == (6 * (50_000 // 64), "flip")
    fast = resolve("fast")  # the preset differs in those two only
    assert (fast.data.train_sizes, fast.eval_every) == ([24, 28, 32], 3 * (50_000 // 64))
    sizes = dataclasses.replace(fast16.data, train_sizes=[24, 28, 32])
    assert dataclasses.replace(fast16, data=sizes, eval_every=2343) == fast


def test_the_avx2_recipes_are_the_commands_benchmarks_md_records():
    # BENCHMARKS.md records them as r20-b128-4sizes with --set strings, run before they had names
    r20 = resolve("r20-avx2-9min")
    assert r20 == resolve(
        "r20-b128-4sizes",
        "epochs=7",
        "data.train_sizes=[16, 16, 16, 16, 20, 24, 32]",
        "eval_every=100000",
    )
    r14 = resolve("r14-avx2-9min")
    assert r14 == resolve(
        "r20-b128-4sizes",
        "model.name=cifar_resnet",
        "model.overrides.depth=14",
        "epochs=9",
        "data.train_sizes=[16, 16, 16, 16, 16, 20, 24, 32, 32]",
        "eval_every=100000",
    )
    # one epoch per size, and one evaluation: at the end (7 and 9 epochs of 390 batches of 128)
    for cfg in (r20, r14):
        assert len(cfg.data.train_sizes) == cfg.epochs and cfg.data.train_sizes[-1] == 32
        assert cfg.eval_every > cfg.epochs * (50_000 // cfg.batch_size)
    assert (r14.model.name, r14.model.overrides["depth"]) == ("cifar_resnet", 14)


def test_profile_step_sorts_ops_into_kinds():
    profile_step = load_benchmark("profile_step")
    kind = profile_step.kind_of
    assert kind(["aten::conv2d", "aten::convolution"], "forward") == "convolution"
    assert kind(["autograd::engine::evaluate_function: ConvolutionBackward0"], "backward") == (
        "convolution"
    )
    assert kind(["autograd::engine::evaluate_function: NativeBatchNormBackward0"], "backward") == (
        "batch norm"
    )
    assert kind(["aten::conv2d", "aten::to", "aten::_to_copy"], "forward") == (
        "casts and layout copies"
    )
    assert kind(["autograd::engine::evaluate_function: AddBackward0"], "backward") == (
        "elementwise and shortcuts"
    )
    assert kind(["aten::_foreach_add_"], "optimizer") == "optimizer"
    assert kind([], "forward") == "host (Python, dispatch)"


def test_profile_step_quick_accounts_for_the_whole_step(capsys, tmp_path):
    profile_step = load_benchmark("profile_step")
    out_json = tmp_path / "profile.json"
    assert profile_step.main(["--quick", "--settings", "fp32-cl", "--json", str(out_json)]) == 0
    setting = json.loads(out_json.read_text())["settings"]["fp32-cl"]
    kinds = setting["by_kind"]
    assert kinds["convolution"]["forward"] > 0 and kinds["convolution"]["backward"] > 0
    assert kinds["optimizer"]["optimizer"] > 0 and setting["cpu_ms_per_step"] > 0
    totals = ("**profiled total**", "process CPU time per step, unprofiled")
    rows = [row for row in table_rows(capsys.readouterr().out) if row[0] not in totals]
    shares = [float(row[2].rstrip("%")) for row in rows]
    assert sum(shares) == pytest.approx(100, abs=0.1 * len(shares))


def test_ablation_step_quick_states_each_row_against_the_peak_of_its_arithmetic(capsys, tmp_path):
    ablation = load_benchmark("ablation_step")
    out_json = tmp_path / "ablation.json"
    argv = ["--quick", "--rows", "reference", "cl-bf16", "--json", str(out_json)]
    assert ablation.main(argv) == 0
    payload = json.loads(out_json.read_text())
    assert set(payload["peaks"]) == {"fp32", "bf16"}  # a bf16 row brings the bf16 peak
    rows = table_rows(capsys.readouterr().out)
    flop = 6 * ablation.summarize(ablation.create_model("resnet20"), (32, 32)).macs
    for row, name, kind in zip(rows, ("reference", "cl-bf16"), ("fp32", "bf16"), strict=True):
        cpu_ms = float(row[1])
        rate = flop / (cpu_ms / 1e3)
        share, arithmetic = row[5].split()
        assert arithmetic == kind, name
        # the table's ms are rounded to 0.01, so the share recomputed from them may differ by 1
        assert abs(float(share.rstrip("%")) - 100 * rate / payload["peaks"][kind]["cpu"]) <= 1


@pytest.mark.slow
def test_time_to_accuracy_evaluation_ablation_matches_the_runs_own_evaluation(capsys, tmp_path):
    """Of the four evaluations, the EMA weights with flip TTA are what the run itself measured
    at its end; the other three differ from it only in what is evaluated."""
    tta = load_benchmark("time_to_accuracy")
    sets = ["--set", "ema_decay=0.9", "--set", "eval_tta=flip"]
    argv = ["--quick", "--out", str(tmp_path / "run"), "--eval-ablation", *sets,
            "--json", str(tmp_path / "c.json")]  # fmt: skip
    assert tta.main(argv) == 0
    out = capsys.readouterr().out
    ablation = json.loads((tmp_path / "c.json").read_text())["recipe"]["eval_ablation"][0]
    assert list(ablation) == list(tta.EVAL_VARIANTS)
    final = tta.eval_curve(tmp_path / "run" / "recipe" / "seed0")[-1]["test_acc"]
    assert ablation["EMA weights, flip TTA"] == pytest.approx(final, abs=1e-9)
    assert f"| EMA weights, no TTA | {100 * ablation['EMA weights, no TTA']:.2f}% |" in out
    # without an EMA there is no EMA to evaluate: only the trained weights' two rows
    assert tta.main(["--quick", "--out", str(tmp_path / "plain")]) == 0
    plain = tta.evaluation_ablation(tmp_path / "plain" / "recipe" / "seed0")
    assert list(plain) == [name for name in tta.EVAL_VARIANTS if name.startswith("trained")]
    # the table alone, of the finished run, trains nothing and prints the same accuracies
    assert tta.main(["--eval-ablation-of", str(tmp_path / "plain" / "recipe" / "seed0")]) == 0
    table = capsys.readouterr().out
    for name, acc in plain.items():
        assert f"| {name} | {100 * acc:.2f}% |" in table


def test_conv_kernels_counts_a_problems_arithmetic_from_its_descriptor():
    conv_kernels = load_benchmark("conv_kernels")
    flop = conv_kernels.problem_flop
    # ResNet-20's first stage: 128 images, 16 -> 16 channels, 32x32 out, 3x3 kernel
    assert flop("mb128_ic16oc16_ih32oh32kh3sh1dh0ph1_iw32ow32kw3sw1dw0pw1") == (
        2 * 128 * 16 * 16 * 32 * 32 * 9
    )
    # a strided one, and groups (each output channel sees ic / g inputs)
    strided = "mb8_ic16oc32_ih32oh16kh3sh2dh0ph1_iw32ow16kw3sw2dw0pw1"
    assert flop(strided) == 2 * 8 * 16 * 32 * 16 * 16 * 9
    assert flop("g32mb1_ic32oc32_ih14oh14kh3sh1dh0ph1_iw14ow14kw3sw1dw0pw1") == 2 * 32 * 196 * 9
    with pytest.raises(ValueError, match="no ic, oc"):
        flop("mb2_ih4oh4kh3")
    assert conv_kernels.layer_name("mb8_ic16oc32_ih32oh16kh3sh2dh0ph1_iw32ow16kw3sw2dw0pw1") == (
        "16->32, 32x32 px, 3x3 stride 2"
    )
    line = (
        "onednn_verbose,v1,primitive,exec,cpu,convolution,brg_conv_fwd:avx512_core_bf16,"
        "forward_training,src:bf16::blocked:acdb::f0 dst:bf16::blocked:acdb::f0,"
        "attr-scratchpad:user,alg:convolution_direct,"
        "mb128_ic3oc16_ih32oh32kh3sh1dh0ph1_iw32ow32kw3sw1dw0pw1,0.848877"
    )
    (e,) = conv_kernels.parse_verbose([line, "onednn_verbose,v1,info,cpu,runtime:OpenMP", "x"])
    assert (e["kind"], e["prop_kind"], e["ms"]) == ("convolution", "forward_training", 0.848877)
    assert e["implementation"] == "brg_conv_fwd:avx512_core_bf16"


def test_conv_kernels_quick_finds_every_convolution_of_the_step(tmp_path):
    """oneDNN's executions over one step: each conv layer forward and to its weights, each but
    the stem to its input, and the forward arithmetic equal to a count from the layers."""
    import torch

    if not torch.backends.mkldnn.is_available():
        pytest.skip("this torch has no oneDNN")
    conv_kernels = load_benchmark("conv_kernels")
    out_json = tmp_path / "conv.json"
    assert conv_kernels.main(["--quick", "--precision", "fp32", "--json", str(out_json)]) == 0
    result = json.loads(out_json.read_text())
    if not result["layers"]:
        pytest.skip("this torch build ran the convolutions without oneDNN")
    model = create_model("resnet20")
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    sizes = {}
    hooks = [c.register_forward_hook(lambda m, i, o: sizes.__setitem__(m, o.shape)) for c in convs]
    model(torch.zeros(1, 3, 16, 16))
    for h in hooks:
        h.remove()
    expected = sum(  # 2 x batch 8 x output pixels x output channels x (inputs x kernel) per pixel
        2 * 8 * sizes[c][2] * sizes[c][3] * c.out_channels * c.in_channels * 9 for c in convs
    )
    rows = result["layers"]
    calls = {p: sum(r["calls_per_step"] for r in rows if r["pass"] == p) for p in
             ("forward", "gradient of the input", "gradient of the weights")}  # fmt: skip
    assert calls == {
        "forward": len(convs),
        "gradient of the input": len(convs) - 1,  # the images need no gradient
        "gradient of the weights": len(convs),
    }
    forward = sum(
        conv_kernels.problem_flop(r["problem"]) * r["calls_per_step"]
        for r in rows
        if r["pass"] == "forward"
    )
    assert forward == expected
    assert result["conv_ms_per_step"] == pytest.approx(sum(r["ms_per_step"] for r in rows))


def test_bench_host_memory_quick_pairs_the_two_settings(capsys, tmp_path):
    bench = load_benchmark("bench_host_memory")
    out_json = tmp_path / "host.json"
    assert bench.main(["--quick", "--json", str(out_json)]) == 0
    payload = json.loads(out_json.read_text())
    (pair,) = payload["pairs"]
    assert [pair[s]["host_memory"] for s in ("system", "keep")] == ["system", "keep"]
    ratio = pair["keep"]["img_per_s"] / pair["system"]["img_per_s"]
    assert payload["summary"]["ratios"] == [pytest.approx(ratio)]
    assert f"median **{ratio:.3f}x**" in capsys.readouterr().out
