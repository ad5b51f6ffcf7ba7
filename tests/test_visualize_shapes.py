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


def test_an_image_sequential_without_config_is_probed_for_its_shape(tmp_path):
    """A Sequential opening with a conv layer (fastnn.save of a user's CNN: no config) was
    fed a 1 x 28 x 28 image whatever it took ('expected input of shape (N, 3, H, W)');
    its channels come from the first conv layer and its size from the first of 28, 32,
    64... a blank image goes through."""
    from fastnn import nn
    fastnn.manual_seed(0)
    rgb_any = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                            nn.Flatten(), nn.Linear(4, 5))
    assert image_shape(rgb_any) == (3, 28, 28)
    grey_32 = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(),
                            nn.Flatten(), nn.Linear(2 * 32 * 32, 5))
    running = grey_32[1].running_mean.copy()
    assert image_shape(grey_32) == (1, 32, 32)
    # the probe ran in eval mode: no running statistics moved, the mode given back
    np.testing.assert_array_equal(grey_32[1].running_mean, running)
    assert grey_32.training and grey_32[1].num_batches_tracked == 0
    image, before, after = visualize_class(grey_32, 3, steps=15, seed=0)
    assert image.shape == (1, 32, 32) and after > before
    fastnn.save(rgb_any, tmp_path / "rgb.npz")
    dream_from_checkpoint(tmp_path, "rgb.npz", 1)


def test_an_image_shape_no_size_fits_is_asked_for():
    from fastnn import nn
    odd = nn.Sequential(nn.Conv2d(2, 2, 3), nn.Flatten(), nn.Linear(2 * 15 * 15, 4))
    with pytest.raises(ValueError, match=r"cannot tell the image shape.*--image-shape C,H,W"):
        image_shape(odd)
    assert image_shape(odd, (2, 17, 17)) == (2, 17, 17)
    image, before, after = visualize_class(odd, 0, steps=3, seed=0, shape=(2, 17, 17))
    assert image.shape == (2, 17, 17)
    for bad in ((2, 17), (2, 0, 17), "2,17,17", (2.0, 17, 17)):
        with pytest.raises(ValueError, match=r"expected shape to be \(C, H, W\)"):
            visualize_class(odd, 0, steps=1, shape=bad)


def test_dream_takes_the_image_shape(tmp_path, capsys):
    from fastnn import nn
    fastnn.manual_seed(0)
    fastnn.save(nn.Sequential(nn.Conv2d(2, 2, 3), nn.Flatten(), nn.Linear(2 * 15 * 15, 4)),
                tmp_path / "odd.npz")
    backend = fastnn.get_backend()
    try:
        argv = ["dream", "--checkpoint", str(tmp_path / "odd.npz"), "--target-class", "1",
                "--steps", "2", "--out", str(tmp_path / "d.png"), "--no-progress"]
        assert cli.main(argv + ["--image-shape", "2,17,17"]) == 0
        assert (tmp_path / "d.png").stat().st_size > 0
        for bad in ("2,17", "a,b,c", "2,0,17"):
            assert cli.main(argv + ["--image-shape", bad]) == 2
            assert "--image-shape expects three positive integers" in capsys.readouterr().err
    finally:
        fastnn.set_backend(backend)


def test_progress_takes_a_bool_as_fit_does(capsys):
    """visualize_class(..., progress=False), as fit(progress=False) is written, raised
    "TypeError: 'bool' object is not callable" after its first step: progress was called
    as a step callback whatever it was. A bool now turns a tqdm bar off or on, a callable
    is called once a step as before, and anything else is refused before the model runs."""
    from fastnn import nn
    fastnn.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    image, before, after = visualize_class(net, 1, steps=4, seed=0, shape=(1, 8, 8))
    calls = []
    for progress in (False, True, np.bool_(False), calls.append):
        again = visualize_class(net, 1, steps=4, seed=0, shape=(1, 8, 8), progress=progress)
        np.testing.assert_array_equal(again[0], image)
        assert again[1:] == (before, after)
    assert calls == [1] * 4
    for bad in (3, "yes"):
        with pytest.raises(TypeError, match="expected progress to be a bool, None or a "
                                            "callable"):
            visualize_class(net, 1, steps=4, shape=(1, 8, 8), progress=bad)


@pytest.mark.parametrize("scales", [(2,), (2, 1), (4, 2, 1)])
def test_a_non_square_image_keeps_its_shape_at_coarse_scales(scales):
    """A (1, 16, 24) image model dreams at coarse scales: each side of the small image is
    divided by the scale (one size for both sides upsampled it to 16 x 16, which the
    model's Linear refused)."""
    from fastnn import nn
    fastnn.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(2 * 16 * 24, 3))
    image, before, after = visualize_class(model, 1, steps=6, seed=0, shape=(1, 16, 24),
                                           scales=scales)
    assert image.shape == (1, 16, 24) and 0 <= image.min() and image.max() <= 1


def test_a_non_square_coarse_step_is_torchs_gradient_through_the_upsampling():
    """One step at scale 2 of a (1, 8, 12) image: the small (4, 6) image moves by the
    logit's gradient through the bilinear upsampling (align_corners=True: end points
    kept), as torch's autograd gives it, and comes back upsampled to (8, 12)."""
    torch = pytest.importorskip("torch")
    from fastnn import nn
    fastnn.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(96, 3))
    lr = 0.5
    image, _, _ = visualize_class(model, 2, steps=1, lr=lr, jitter=0, weight_decay=0,
                                  clip=None, blur_every=0, scales=(2,), seed=4,
                                  shape=(1, 8, 12))
    start = np.clip(0.5 + 0.05 * np.random.default_rng(4).standard_normal((1, 8, 12)),
                    0, 1).astype(np.float32)

    def up(t, size):
        return torch.nn.functional.interpolate(t, size=size, mode="bilinear",
                                               align_corners=True)
    small = up(torch.from_numpy(start.astype(np.float64))[None], (4, 6)).requires_grad_()
    weight = torch.from_numpy(model[1].weight.data.astype(np.float64))
    (up(small, (8, 12)).reshape(1, -1) @ weight.T)[0, 2].backward()
    expected = up((small + lr * small.grad).clamp(0, 1).detach(), (8, 12))[0].numpy()
    np.testing.assert_allclose(image, expected, rtol=1e-5, atol=1e-6)
