"""Grad-CAM (Selvaraju et al. 2017): a hand-built net whose class evidence sits in one corner,
equality with direct computations from hooks, and `resnetlab explain`."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from eval_support import run_main, single_line, trained_run
from resnetlab import ConfigError, create_model
from resnetlab.analysis.gradcam import default_layer, gradcam

SIDE = 16
CORNERS = {
    "top-left": (0, 0),
    "top-right": (0, 12),
    "bottom-left": (12, 0),
    "bottom-right": (12, 12),
}


def corner_net():
    """A CIFAR ResNet-8 for 16x16 one-channel images that passes the image through to channel 0
    of every stage and whose class 1 is the mean of that channel at the end (class 0 its
    negative): zero-initialised blocks are identities (their branch ends in a BN of scale 0),
    option A carries channel 0 through each subsampling, the stem's conv copies the pixel."""
    model = create_model("cifar_resnet", depth=8, in_channels=1, zero_init_residual=True)
    with torch.no_grad():
        model.conv1.weight.zero_()
        model.conv1.weight[0, 0, 1, 1] = 1.0  # the centre tap: channel 0 = the image
        model.fc.weight.zero_()
        model.fc.bias.zero_()
        model.fc.weight[1, 0], model.fc.weight[0, 0] = 1.0, -1.0
    return model.eval()


@pytest.mark.parametrize("corner", list(CORNERS))
def test_the_heatmap_peaks_where_the_class_evidence_is(corner):
    row, col = CORNERS[corner]
    x = torch.rand(1, 1, SIDE, SIDE) * 0.1  # faint evidence everywhere
    x[0, 0, row : row + 4, col : col + 4] = 1.0  # strong evidence in one 4x4 corner
    g = gradcam(corner_net(), x)
    assert g.layer == "layer3" and g.classes.tolist() == [1]
    peak_row, peak_col = divmod(int(g.heatmap[0].argmax()), SIDE)
    assert abs(peak_row - (row + 1.5)) <= 2 and abs(peak_col - (col + 1.5)) <= 2
    # the corner's quadrant holds most of the map
    quadrant = g.heatmap[0, row // 8 * 8 : row // 8 * 8 + 8, col // 8 * 8 : col // 8 * 8 + 8]
    assert quadrant.sum() > 0.5 * g.heatmap[0].sum()
    assert g.heatmap.max() == 1.0 and g.heatmap.min() >= 0
    # class 0's evidence is negative everywhere: its map is zero
    assert torch.equal(gradcam(corner_net(), x, class_index=0).heatmap, torch.zeros(1, SIDE, SIDE))


def test_last_stage_maps_equal_the_closed_form_of_a_pooled_linear_head():
    # After the last stage come a global average pool and fc: dy_c/dA_k = w_ck / (h w)
    # everywhere, so L^c = ReLU(sum_k w_ck A_k) / (h w), from a forward hook alone.
    torch.manual_seed(0)
    model = create_model("cifar_resnet", depth=8).eval()
    x = torch.randn(3, 3, SIDE, SIDE)
    seen = []
    handle = model.layer3.register_forward_hook(lambda m, i, out: seen.append(out.detach()))
    with torch.no_grad():
        predicted = model(x).argmax(1)
    handle.remove()
    (maps,) = seen  # (B, 64, 4, 4)
    w = model.fc.weight[predicted]  # (B, 64)
    expected = torch.relu(torch.einsum("bk,bkhw->bhw", w, maps)) / (4 * 4)
    g = gradcam(model, x)
    assert torch.equal(g.classes, predicted)
    assert torch.allclose(g.cam, expected, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize(
    ("name", "kwargs", "layer", "shape"),
    [
        ("cifar_resnet", {"depth": 8}, "layer2", (3, 16, 16)),
        ("resnet18", {"num_classes": 5}, "layer3.1", (3, 64, 64)),
        ("resnet50_signs", {}, "stage4", (3, 64, 64)),
    ],
)
def test_any_layer_of_any_registry_model_equals_a_direct_computation(name, kwargs, layer, shape):
    torch.manual_seed(0)
    model = create_model(name, **kwargs).eval()
    x = torch.randn(2, *shape)
    classes = [1, 3]
    g = gradcam(model, x, layer=layer, class_index=classes)
    for b, c in enumerate(classes):  # one image at a time, with its own backward pass
        seen = []
        module = model.get_submodule(layer)
        handle = module.register_forward_hook(lambda m, i, out, s=seen: s.append(out))
        logits = model(x[b : b + 1])
        handle.remove()
        (grad,) = torch.autograd.grad(logits[0, c], seen[0])
        alpha = grad.mean(dim=(2, 3), keepdim=True)
        expected = torch.relu((alpha * seen[0]).sum(dim=1))[0].detach()
        assert torch.allclose(g.cam[b], expected, atol=1e-6, rtol=1e-4), (name, b)
    assert default_layer(model) == model.feature_info[-1]["module"]
    assert all(p.grad is None for p in model.parameters())  # the weights got no gradient


def test_bad_layers_and_classes_are_one_line():
    model = corner_net()
    x = torch.zeros(1, 1, SIDE, SIDE)
    with pytest.raises(ConfigError, match=r"--layer 'layer9': no such module \(the stages: relu"):
        gradcam(model, x, layer="layer9")
    with pytest.raises(ConfigError, match="needs a module that runs once and outputs"):
        gradcam(model, x, layer="fc")
    with pytest.raises(ConfigError, match=r"--class must be a class index in 0\.\.9; got 10"):
        gradcam(model, x, class_index=10)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return trained_run(tmp_path_factory.getbasetemp())


def _images(folder, n=2):
    from resnetlab.data import load_dataset

    ds = load_dataset("digits", "test", image_size=SIDE)
    paths = []
    for i in range(n):
        path = folder / f"digit{i}.png"
        Image.fromarray(ds.images[i, 0].numpy()).save(path)
        paths.append(path)
    return paths, ds.labels[:n].tolist()


def test_explain_writes_an_overlay_and_the_top_classes_per_image(run_dir, tmp_path, capsys):
    paths, _ = _images(tmp_path)
    out = tmp_path / "explained"
    ckpt = str(run_dir / "checkpoints" / "last.pt")
    code, stdout, err = run_main(["explain", ckpt, *map(str, paths), "--out", str(out)], capsys)
    assert code == 0, err
    code, pred, err = run_main(["predict", ckpt, *map(str, paths), "--json"], capsys)
    predictions = json.loads(pred)["predictions"]
    for path, predicted in zip(paths, predictions, strict=True):
        record = json.loads((out / f"{path.stem}.gradcam.json").read_text())
        assert record["layer"] == "layer3" and record["image"] == str(path)
        assert [t["index"] for t in record["top"]] == [t["index"] for t in predicted["top"]]
        assert record["explained"]["index"] == predicted["top"][0]["index"]
        png = Image.open(out / record["heatmap_png"])
        assert png.size == (256, 256) and png.mode == "RGB"  # 16x16 scaled by 16
        assert str(out / record["heatmap_png"]) in stdout
    code, _, err = run_main(["explain", ckpt, str(paths[0]), "--out", str(out), "--class", "7",
                             "--layer", "layer2", "--top-k", "2"], capsys)  # fmt: skip
    assert code == 0, err
    record = json.loads((out / "digit0.gradcam.json").read_text())
    assert record["explained"]["index"] == 7 and record["layer"] == "layer2"
    assert len(record["top"]) == 2 and record["peak"]["of"] == [SIDE, SIDE]


def test_explain_errors_are_one_line(run_dir, tmp_path, capsys):
    paths, _ = _images(tmp_path, 1)
    ckpt = str(run_dir / "checkpoints" / "last.pt")
    for extra, message in [
        (["--class", "eleven"], "--class 'eleven': not a class index in 0..9 or a name"),
        (["--layer", "nope"], "--layer 'nope': no such module"),
        (["--top-k", "0"], "--top-k must be at least 1; got 0"),
    ]:
        code, _, err = run_main(
            ["explain", ckpt, str(paths[0]), *extra, "--out", str(tmp_path)], capsys
        )
        assert code == 2 and message in single_line(err), err
    code, _, err = run_main(["explain", ckpt, str(tmp_path / "none.png")], capsys)
    assert code == 2 and "none.png: image file not found" in single_line(err)
    # two inputs of one name get two outputs
    (tmp_path / "b").mkdir()
    twin = tmp_path / "b" / paths[0].name
    twin.write_bytes(paths[0].read_bytes())
    code, _, err = run_main(
        ["explain", ckpt, str(paths[0]), str(twin), "--out", str(tmp_path / "o")], capsys
    )
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "digit0-2.gradcam.json", "digit0-2.gradcam.png", "digit0.gradcam.json", "digit0.gradcam.png"
    ]  # fmt: skip
