"""Timing helpers: order statistics, windows, memory readings, the machine description."""

import mmap
from pathlib import Path

import numpy as np
import pytest
import torch

from resnetlab.bench.timing import (
    Stats,
    current_rss_mib,
    describe_machine,
    machine_info,
    matmul_flops,
    peak_rss_mib,
    percentile,
    time_calls,
    time_windows,
)


@pytest.mark.parametrize("q", [0, 10, 50, 90, 100])
def test_percentile_equals_numpys_linear_method(q):
    samples = [5.0, 1.0, 4.0, 2.5, 9.0, 7.0, 3.0]
    assert percentile(samples, q) == pytest.approx(np.percentile(samples, q))


def test_stats_of_samples():
    s = Stats.of([3.0, 1.0, 2.0, 10.0])
    assert (s.median, s.min, s.max, s.n) == (2.5, 1.0, 10.0, 4)
    assert s.p10 == pytest.approx(np.percentile([1, 2, 3, 10], 10))
    assert s.to_dict()["p90"] == pytest.approx(np.percentile([1, 2, 3, 10], 90))
    with pytest.raises(ValueError, match="no samples"):
        Stats.of([])


def test_time_windows_calls_warmup_plus_windows_times_iters():
    calls = []
    per_call = time_windows(lambda: calls.append(1), warmup=2, windows=3, iters=4)
    assert len(calls) == 2 + 3 * 4
    assert len(per_call) == 3 and all(t >= 0 for t in per_call)
    assert len(time_calls(lambda: None, warmup=0, iters=5)) == 5


def test_memory_readings_are_positive_and_peak_bounds_current():
    now, peak = current_rss_mib(), peak_rss_mib()
    assert 10 < now <= peak + 1  # statm and ru_maxrss count pages a little differently
    # 64 MiB of fresh pages, touched: mapped here rather than malloc'd, since a process that
    # keeps its freed memory (host_memory, set by any CPU run built before) may serve a tensor
    # from pages it already holds
    size = 64 * 2**20
    big = mmap.mmap(-1, size)
    for offset in range(0, size, mmap.PAGESIZE):
        big[offset] = 1
    assert peak_rss_mib() >= current_rss_mib() - 1 >= now + 50
    big.close()


def test_matmul_flops_is_a_plausible_rate():
    rate = matmul_flops(torch.float32, n=256, repeats=2)
    assert 1e8 < rate < 1e14


def test_machine_info_names_the_versions():
    info = machine_info()
    assert info["torch"] == torch.__version__
    assert info["logical_cpus"] >= 1 and info["torch_threads"] >= 1
    line = describe_machine(info)
    assert info["cpu"] in line and f"torch {torch.__version__}" in line


@pytest.mark.parametrize(
    ("bf16", "amx", "words"),
    [(True, True, "AMX-BF16"), (True, False, "AVX512-BF16, no AMX"),
     (False, False, "no bf16 instructions")],
)  # fmt: skip
def test_the_machine_line_names_the_bf16_hardware(bf16, amx, words):
    info = {**machine_info(), "cpu_bf16": bf16, "cpu_amx": amx}
    assert f"({info['cpu_capability']}, {words}, " in describe_machine(info)


def test_the_cpu_signature_is_the_first_processors_family_and_model():
    from resnetlab.machine import cpu_signature

    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        pytest.skip("no /proc/cpuinfo on this system")
    block = text.split("\n\n")[0]
    fields = dict(
        (k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in block.splitlines())
    )
    if "cpu family" not in fields:
        pytest.skip("this /proc/cpuinfo has no cpu family (not x86)")
    assert cpu_signature() == f"family {fields['cpu family']} model {fields['model']}"


def test_experiment_records_name_the_cpu_and_its_isa_and_old_records_still_read():
    from resnetlab.experiments.results import describe_environment, environment
    from resnetlab.machine import cpu_isa

    env = environment()
    assert env["ISA"] == cpu_isa()
    assert env["ISA"].startswith(torch.backends.cpu.get_cpu_capability() + ", ")
    assert f"({env['CPU']}, {env['ISA']})" in describe_environment(env) or not env["CPU"]
    old = {k: v for k, v in env.items() if k not in ("CPU", "ISA")}  # a record from before
    assert describe_environment(old).startswith(f"{env['machine']}, {env['logical CPUs']} ")
