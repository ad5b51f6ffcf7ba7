"""Which image a flat MLP's input is viewed as for class visualisation: grey H*W
(MNIST's 784), colour 3*H*W channel-major (CIFAR-10's 3072), anything else refused."""
import numpy as np
import pytest

from fastnn import cli, models
from fastnn.visualize import image_shape, visualize_class
import fastnn


@pytest.mark.parametrize("features,shape", [(784, (1, 28, 28)), (64, (1, 8, 8)),
                                            (3072, (3, 32, 32)), (48, (3, 4, 4))])
def test_flat_inputs(features, shape):
    assert image_shape(models.MLP(features, [4], 3)) == shape


def test_other_sizes_refused():
    with pytest.raises(ValueError, match="cannot view 50 input features"):
        image_shape(models.MLP(50, [4], 3))


def dream_from_checkpoint(tmp_path, name, target_class):
    """`fastnn dream` on tmp_path/name writes a non-empty tmp_path/d.png (the backend is
    restored after it)."""
    backend = fastnn.get_backend()
    try:
        assert cli.main(["dream", "--checkpoint", str(tmp_path / name), "--target-class",
                         str(target_class), "--steps", "5", "--out", str(tmp_path / "d.png"),
                         "--no-progress"]) == 0
    finally:
        fastnn.set_backend(backend)
    assert (tmp_path / "d.png").stat().st_size > 0


def test_colour_mlp_dreams(tmp_path):
    fastnn.manual_seed(0)
    model = models.MLP(3 * 8 * 8, [16], 4)
    image, before, after = visualize_class(model, 2, steps=30, seed=0)
    assert image.shape == (3, 8, 8) and after > before
    fastnn.save(model, tmp_path / "m.npz")
    dream_from_checkpoint(tmp_path, "m.npz", 1)
    assert np.all((image >= 0) & (image <= 1))


def test_standardized_checkpoint_is_fed_standardized(tmp_path):
    """train --standardize saves the pixel mean and std; dream feeds (image - mean) / std,
    and the gradient reaches the [0, 1] image through the division."""
    import json
    fastnn.manual_seed(0)
    model = models.MLP(64, [16], 4)
    mean, std = 0.3, 0.4
    image, before, after = visualize_class(model, 1, steps=20, seed=0, mean=mean, std=std)
    raw, raw_before, _ = visualize_class(model, 1, steps=20, seed=0)
    assert after > before and not np.allclose(image, raw)
    from fastnn.visualize import class_probability
    x = np.clip(image, 0, 1)
    logits = model(((x[None] - mean) / std).reshape(1, -1).astype(np.float32))
    e = np.exp(logits - logits.max())
    assert class_probability(model, image, 1, mean, std) == pytest.approx(
        float(e[0, 1] / e.sum()), rel=1e-5)
    with pytest.raises(ValueError, match="std"):
        visualize_class(model, 1, steps=1, std=0.0)

    backend = fastnn.get_backend()
    try:
        assert cli.main(["train", "--dataset", "digits", "--standardize", "--epochs", "1",
                         "--save", str(tmp_path / "m.npz"), "--no-progress"]) == 0
        assert cli.main(["dream", "--checkpoint", str(tmp_path / "m.npz"), "--target-class",
                         "2", "--steps", "3", "--out", str(tmp_path / "d.png"), "--metrics",
                         str(tmp_path / "d.json"), "--no-progress"]) == 0
    finally:
        fastnn.set_backend(backend)
    metrics = json.loads((tmp_path / "d.json").read_text())
    assert 0.2 < metrics["pixel_mean"] < 0.4 and 0.3 < metrics["pixel_std"] < 0.5


@pytest.mark.parametrize("scales,largest", [((1,), 4), ((2,), 2), ((4,), 1)])
def test_jitter_counts_image_pixels_at_every_scale(monkeypatch, scales, largest):
    """jitter=4 shifts the image by up to 4 of its pixels: at scale 2 the half-size image
    moves by up to 2 of its own, at 4 by 1 (not 4 each, which made coarse scales fail)."""
    shifts = []
    roll = np.roll

    def recording_roll(a, shift, axis=None):
        if axis == (1, 2) and a.ndim == 3:
            shifts.append(np.abs(shift).max())
        return roll(a, shift, axis=axis)
    monkeypatch.setattr(np, "roll", recording_roll)
    fastnn.manual_seed(0)
    visualize_class(models.MLP(784, [8], 3), 1, steps=60, jitter=4, scales=scales, seed=0)
    forward_shifts = shifts[::2]  # each step rolls the image, then its gradient back
    assert max(forward_shifts) == largest


def test_a_sequential_opening_with_a_linear_layer_dreams_as_an_mlp(tmp_path):
    """A Sequential of the README's ten lines, saved with fastnn.save, has no config: dream
    fed it a (1, 1, 28, 28) image, refused by its Linear(784) ('expected input of shape
    (*, 784)'), and a Linear(64) was never viewed as 8x8. Its flat input is now viewed as
    an MLP's: the same image as the MLP holding the same weights."""
    from fastnn import nn
    fastnn.manual_seed(0)
    mlp = models.MLP(64, [16], 4)
    seq = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 4))
    seq.load_state_dict(mlp.state_dict())
    assert image_shape(seq) == (1, 8, 8)
    assert image_shape(nn.Sequential(nn.Linear(3072, 10))) == (3, 32, 32)
    got = visualize_class(seq, 2, steps=20, seed=0)
    want = visualize_class(mlp, 2, steps=20, seed=0)
    np.testing.assert_array_equal(got[0], want[0])
    assert got[1:] == want[1:] and got[2] > got[1]
    fastnn.save(nn.Sequential(nn.Linear(784, 10)), tmp_path / "seq.npz")
    dream_from_checkpoint(tmp_path, "seq.npz", 3)
    with pytest.raises(ValueError, match="cannot view 50 input features"):
        image_shape(nn.Sequential(nn.Linear(50, 3)))
