"""Our ImageNet nets take torchvision's state dicts as they are, and compute what torchvision does.

The fixture was written by ``fixtures/make_torchvision_fixture.py`` from torchvision 0.29.1: every
state-dict key and shape, and logits computed by torchvision with deterministic weights.
"""

import json
import sys
from pathlib import Path

import pytest
import torch

from resnetlab.models import create_model

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIXTURES))
from torchvision_weights import fixed_input, weight_for  # noqa: E402

TORCHVISION = json.loads((FIXTURES / "torchvision_resnets.json").read_text())["models"]


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_state_dict_layout_equals_torchvision(name):
    ours = [[k, list(v.shape)] for k, v in create_model(name).state_dict().items()]
    assert ours == TORCHVISION[name]["state_dict"]


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_outputs_equal_torchvision_with_the_same_weights(name):
    layout = TORCHVISION[name]["state_dict"]
    model = create_model(name).eval()
    model.load_state_dict({k: weight_for(k, tuple(s)) for k, s in layout}, strict=True)
    with torch.no_grad():
        logits = model(fixed_input())
    expected = torch.tensor(TORCHVISION[name]["logits"])
    assert expected.abs().max() > 0.1  # the reference is not degenerate
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)
