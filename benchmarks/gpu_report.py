"""The GPU suite's record (``gpu_suite.json``) as Markdown, ready for BENCHMARKS.md.

Every number printed is read from the record; nothing is computed here but formatting.
"""

from __future__ import annotations

TITLES = {
    "pytest": "1. CUDA tests",
    "resnet50": "2. {model} throughput",
    "cifar": "3. CIFAR ResNet-20, device-resident pipeline, CIFAR-10 JPEG copy",
}


def markdown(record: dict) -> str:
    """The whole report: header, one section per part (or why it was skipped)."""
    lines = header(record)
    for name, title in TITLES.items():
        part = record["parts"].get(name)
        if part is None:
            continue
        lines += ["", f"## {title.format(model=part.get('model', 'ResNet-50'))}", ""]
        if part["status"] in ("skipped", "error"):
            lines.append(f"**{part['status']}**: {part.get('reason') or part.get('error')}")
            lines += [f"    {line}" for line in part.get("traceback", [])]
            continue
        lines += SECTIONS[name](part)
        lines.append(f"\n({part['seconds']:.0f} s of a {part['limit_s']:.0f} s allowance)")
    return "\n".join(lines)


def header(record: dict) -> list[str]:
    env = record["environment"]
    smi = env["nvidia_smi"] if isinstance(env["nvidia_smi"], dict) else {}
    gpu = env.get("gpu") or "no GPU"
    lines = [f"# GPU suite: {gpu}, {env['date_utc']} UTC", ""]
    if record["dry_run"]:
        lines += [
            "**DRY RUN** on the CPU at tiny sizes: it checks that the suite works; "
            "no number below is a measurement of anything.",
            "",
        ]
    lines += [
        f"Command: `{env['command']}`  ",
        f"Device: {gpu} ({_properties(env)}), driver {smi.get('driver_version', 'unknown')}, "
        f"CUDA {env.get('cuda')}, cuDNN {env['cudnn']}; SM clock at start "
        f"{smi.get('clocks.sm', 'unknown')} "
        f"(max {smi.get('clocks.max.sm', 'unknown')}), power limit {smi.get('power.limit', '?')}  ",
        f"Host: {env['cpu']}, {env['logical_cpus']} logical CPUs; Python {env['python']}, "
        f"torch {env['torch']}, numpy {env['numpy']}, onnxruntime {env['onnxruntime']}, "
        f"resnetlab {env['resnetlab']} (commit {env['git_commit'] or 'unknown'})  ",
        f"Settings as `resnetlab train` leaves them: TF32 in cuDNN convs "
        f"{env['tf32']['cudnn']}, in matmuls {env['tf32']['matmul']}; "
        f"cudnn.benchmark {env['cudnn_benchmark']}  ",
        f"Budget: {record['budget']['used_s']:.0f} s used of {record['budget']['total_s']:.0f} s",
    ]
    install = record.get("install")
    if install:
        lines[-1] += "  "
        lines.append(f"Install: `{install['command']}` exited {install['returncode']}")
    return lines


def _properties(env: dict) -> str:
    p = env.get("gpu_properties")
    if not p:
        return "no CUDA device"
    return (
        f"compute capability {p['compute_capability']}, {p['multiprocessors']} SMs, "
        f"{p['memory_gib']} GiB"
    )


def pytest_section(part: dict) -> list[str]:
    lines = [f"Command: `{part['command']}`", ""]
    if "tests" in part:
        lines += [
            "| tests | passed | failed | errors | skipped |",
            "|---:|---:|---:|---:|---:|",
            f"| {part['tests']} | {part['passed']} | {part['failed']} | {part['errors']} "
            f"| {part['skipped']} |",
        ]
        lines += [f"- failing: `{name}`" for name in part["failing"]]
    said = f"\npytest said: `{part['summary_line']}`"
    lines.append(f"{said} ({part['reason']})" if part.get("reason") else said)
    return lines


def resnet50_section(part: dict) -> list[str]:
    h, w = part["image_size"]
    peak = part["peak"]["flop_per_s"]
    win = part["windows"]
    lines = [
        f"Training: {part['model']}, {h}x{w} synthetic images, batch {part['batch_size']}, "
        "`train_step` as `resnetlab train` takes it (device-resident loader, SGD, the loop's "
        f"bookkeeping). Images/s: median over {win['rounds']} rounds (settings taking turns) of "
        f"the per-round median of {win['windows']} windows x {win['steps']} steps; spread = "
        "min..max of the round medians. FLOP rate = 3 x 2 x forward multiply-adds x images/s, "
        f"against a {part['peak']['size']}-square matmul measured in the same run "
        f"(fp32 without TF32 {peak['fp32'] / 1e12:.1f}, bf16 {peak['bf16'] / 1e12:.1f} TFLOP/s).",
        "",
        "| setting | images/s (median) | spread | vs eager fp32 | first step s | TFLOP/s "
        "| of measured peak |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in part["train"]:
        s = r["img_per_s"]
        lines.append(
            f"| {r['setting']} | {s['median']:,.0f} | {s['min']:,.0f}..{s['max']:,.0f} "
            f"| **{r['ratio']:.2f}x** | {r['first_step_s']:.1f} "
            f"| {r['achieved_flop_per_s'] / 1e12:.1f} "
            f"| {100 * r['peak_fraction']:.0f}% of {r['precision']} |"
        )
    t = part["targets"]
    if t:
        rate, ratio = (_reached(t[k]) for k in ("reached_img_per_s", "reached_ratio"))
        lines.append(
            f"\nTargets (fastest bf16 row, {t['best_bf16']}): at least 3,000 images/s: "
            f"**{rate}** ({t['img_per_s']:,.0f}); at least 3x eager fp32: **{ratio}** "
            f"({t['ratio']:.2f}x)."
        )
    lines += ["", *inference_table(part["inference"])]
    lines += [f"- skipped: {s}" for s in part["skipped"]]
    return lines


def inference_table(results: list[dict]) -> list[str]:
    lines = [
        "Inference (`resnetlab.bench.infer`: each form fed the same fp32 NCHW batch, checked "
        "against eager; spread = min..max of the timed calls):",
        "",
        "| batch | form | latency ms (median) | spread ms | images/s | vs eager | max rel. error "
        "| status |",
        "|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        for name, v in r["variants"].items():
            if v["status"] == "unavailable":
                lines.append(
                    f"| {r['batch_size']} | {name} | | | | | | unavailable: {v['reason']} |"
                )
                continue
            lat = v["latency_ms"]
            lines.append(
                f"| {r['batch_size']} | {name} | {lat['median']:.2f} | {lat['min']:.2f}.."
                f"{lat['max']:.2f} | {v['img_per_s']:,.0f} | **{v['speedup']:.2f}x** "
                f"| {v['max_rel_err']:.1e} | {v['status']} |"
            )
    return lines


def cifar_section(part: dict) -> list[str]:
    d = part["data"]
    unpacked = d["unpack"]
    where = (
        f"{unpacked['files']:,} files unpacked from the zip (sha256 {unpacked['sha256'][:12]}) in "
        f"{unpacked['seconds']:.1f} s"
        if unpacked
        else f"read from {d['root']}"
    )
    lines = [
        f"Data: {where}; {d['train']:,} train / {d['test']:,} test images decoded in "
        f"{d['decode_s']:.1f} s. ResNet-20, `--preset cifar-paper` (45k/5k split), batch "
        f"{part['batch_size']}, the device-resident loader (pad-crop-flip on the device).",
        "",
        "| setting | images/s (median) | spread | vs preset | eval of val+test s "
        "| steps of the schedule at this rate |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in part["rates"]:
        s = r["img_per_s"]
        lines.append(
            f"| {r['setting']} | {s['median']:,.0f} | {s['min']:,.0f}..{s['max']:,.0f} "
            f"| **{r['ratio']:.2f}x** | {r['eval']['seconds']:.2f} | {r['paper_train_s']:.0f} s |"
        )
    plan, run = part["plan"], part["paper_run"]
    lines.append(
        f"\nPaper schedule ({plan['iterations']:,} iterations, {plan['evals']} evaluations), "
        f"setting {plan['setting']}: estimated {plan['estimate_s']:.0f} s "
        f"({plan['train_s']:.0f} s of steps), {plan['left_s']:.0f} s of the budget left."
    )
    if run["status"] == "ok":
        lines.append(
            f"**Run for real**: `{run['command']}` ended in {run['wall_s']:.0f} s of the run's "
            f"own clock ({run['process_s']:.0f} s with the process start), {run['img_per_s']:,.0f} "
            f"images/s; **test accuracy {100 * run['test_accuracy']:.2f}%** on the JPEG copy. "
            f"Under 5 minutes: **{'yes' if run['under_target'] else 'no'}**."
        )
    else:
        what = {"not run": "Not run for real", "stopped": "Stopped at the budget"}.get(
            run["status"], "The run failed"
        )
        lines.append(
            f"**{what}** ({run['reason']}): the extrapolated wall time is the estimate above, "
            f"**{plan['estimate_s'] / 60:.1f} minutes**."
        )
    return lines


def _reached(flag: bool) -> str:
    return "reached" if flag else "not reached"


SECTIONS = {"pytest": pytest_section, "resnet50": resnet50_section, "cifar": cifar_section}
