"""RELIABILITY.md stays true: each row's case count is recomputed from the constants the tests that
produce it use, and each row names a test file that exists."""

from __future__ import annotations

import re

import reliability_support as rs
import test_cli_errors as cli
import test_data_cifar as data_cifar
import test_data_folder as data_folder
import test_data_registry as data_registry
import test_data_signs as data_signs
import test_eval_cli as eval_cli
import test_fuzz_checkpoint as fuzz_ckpt
import test_fuzz_cli as fuzz_cli
import test_fuzz_config as fuzz_config
import test_fuzz_data as fuzz_data
import test_fuzz_images as fuzz_images
import test_integrity as integrity
import test_reliability_cleanup as cleanup
import test_reliability_config as config_values
import test_reliability_diskfull as diskfull
import test_reliability_distributed as distributed
import test_reliability_formats as formats
import test_reliability_kill as kill
import test_reliability_lock as lock
import test_reliability_memory as memory
import test_reliability_outputs as outputs
import test_security_archives as archives
import test_security_checkpoint as sec_ckpt
import test_security_cifar as sec_cifar
import test_security_images as bombs

PER_READER = rs.FUZZ_MUTATED + rs.FUZZ_RANDOM

EXPECTED = {
    "F1": kill.KILLS + kill.KILLS_QUICK,
    "F2": diskfull.CASES,
    "F3": lock.CASES,
    "F4": memory.STEPS,
    "F5": len(distributed.RANKS),
    # each field case is read by the checkpoint reader and by load_weights
    "I1": len(fuzz_ckpt.READERS) * PER_READER + 2 * fuzz_ckpt.FUZZ_FIELDS,
    "I2": PER_READER
    + fuzz_config.FUZZ_VALUES
    + fuzz_config.FUZZ_SETS
    + len(fuzz_config.HOSTILE_YAML),
    "I3": len(fuzz_images.FILES) * rs.FUZZ_MUTATED + 2 * rs.FUZZ_RANDOM,  # 2: PNG, JPEG
    "I4": sum(name.startswith("cifar") for name in fuzz_data.FILES) * PER_READER,
    "I5": sum(name.startswith("signs") for name in fuzz_data.FILES) * PER_READER,
    "I6": sum(name.startswith("archive") for name in fuzz_data.FILES) * PER_READER,
    "I7": sec_ckpt.CASES,
    "I8": sec_cifar.CASES,
    "I9": archives.CASES,
    "I10": bombs.CASES,
    "I11": cli.CASES,
    "I12": data_folder.HOLDOUT_CASES + len(eval_cli.FLAT_RUN_SPLITS),
    "I13": data_folder.EXIF_CASES,
    "I14": data_folder.FORMAT_CASES,
    "I15": bombs.SPECIAL_CASES
    + data_signs.SPECIAL_FILE_CASES
    + data_cifar.SPECIAL_FILE_CASES
    + formats.FIFO_CASES,
    "I16": data_registry.STD_CASES,
    "I17": data_cifar.MISSING_KEY_CASES,
    "I18": data_signs.TEST_ONLY_CASES,
    "I19": outputs.CASES,
    "I20": formats.CASES,
    "I21": cleanup.CASES,
    "I22": fuzz_cli.FUZZ_CLI_ARGV
    + fuzz_cli.FUZZ_CLI_FILES
    + fuzz_cli.FUZZ_CLI_ARGV_SLOW
    + fuzz_cli.FUZZ_CLI_FILES_SLOW,
    "I23": integrity.DAMAGE_CASES,
    "I24": integrity.VALUE_CASES,
    "I25": config_values.CASES,
}


def _rows() -> dict[str, list[str]]:
    text = (rs.REPO / "RELIABILITY.md").read_text()
    table = text.split("<!-- table:start -->")[1].split("<!-- table:end -->")[0]
    rows = {}
    for line in table.strip().splitlines()[2:]:  # past the header and the rule
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows[cells[0]] = cells
    return rows


def test_every_row_has_the_count_its_test_runs():
    rows = _rows()
    assert sorted(rows) == sorted(EXPECTED)
    for key, cells in rows.items():
        assert int(cells[2].replace(",", "")) == EXPECTED[key], f"RELIABILITY.md row {key}"


def test_every_row_names_an_existing_test_file():
    for key, cells in _rows().items():
        names = re.findall(r"`(test_\w+\.py)`", cells[4])
        assert names, f"row {key} names no test file"
        for name in names:
            assert (rs.REPO / "tests" / name).is_file(), f"row {key}: {name} does not exist"
