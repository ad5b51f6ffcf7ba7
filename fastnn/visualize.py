"""Class visualisation: optimise an input image so a trained classifier's class logit grows.

Gradient ascent on the input through the model's explicit backward pass, regularised as in
the classic recipe: random jitter (roll) before each step, an L2 penalty (weight decay) on the
image, gradient clipping, a Gaussian blur every few steps, clamping to [0, 1], and optionally
several scales (optimise a small image first, then upsample and continue).
"""
import numpy as np

from . import backend


def image_shape(model):
    """(C, H, W) of the images a saved classifier takes, from its config."""
    config = getattr(model, "config", {}) or {}
    if "in_features" in config:
        side = int(round(np.sqrt(config["in_features"])))
        if side * side != config["in_features"]:
            raise ValueError(f"visualize: cannot view {config['in_features']} input features "
                             f"as a square image")
        return (1, side, side)
    channels = config.get("in_channels", 1)
    size = config.get("input_size", 28)
    return (channels, size, size)


def _model_input(model, images):
    """(N, C, H, W) images -> what the model's forward takes (flat for an MLP)."""
    if "in_features" in (getattr(model, "config", {}) or {}):
        return images.reshape(images.shape[0], -1)
    return images


def _softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _blur(img, sigma):
    """Separable Gaussian blur of (C, H, W) with reflect padding."""
    radius = max(1, int(round(2 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    padded = np.pad(img, ((0, 0), (radius, radius), (0, 0)), mode="reflect")
    img = sum(w * padded[:, i:i + img.shape[1], :] for i, w in enumerate(taps))
    padded = np.pad(img, ((0, 0), (0, 0), (radius, radius)), mode="reflect")
    return sum(w * padded[:, :, i:i + img.shape[2]] for i, w in enumerate(taps))


def _resize(img, size):
    """Bilinear resize of (C, h, w) to (C, size, size)."""
    c, h, w = img.shape
    ys = np.linspace(0, h - 1, size)
    xs = np.linspace(0, w - 1, size)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    wy, wx = (ys - y0)[None, :, None], (xs - x0)[None, None, :]
    top = img[:, y0][:, :, x0] * (1 - wx) + img[:, y0][:, :, x1] * wx
    bottom = img[:, y1][:, :, x0] * (1 - wx) + img[:, y1][:, :, x1] * wx
    return top * (1 - wy) + bottom * wy


def class_probability(model, image, target_class):
    """Softmax probability of target_class for one (C, H, W) image."""
    logits = model(_model_input(model, image[None].astype(np.float32)))
    return float(_softmax(logits.astype(np.float64))[0, target_class])


def visualize_class(model, target_class, steps=300, lr=1.0, jitter=None, weight_decay=1e-3,
                    clip=1.0, blur_every=10, blur_sigma=0.5, scales=(1,), seed=0,
                    progress=None):
    """Optimise an image to maximise ``target_class``'s logit.

    model: a trained classifier (Module mapping images to (1, num_classes) logits);
    jitter: largest random shift in pixels (None: H // 14, so 2 for 28x28 images and none
    for tiny ones, which a shift would destroy);
    scales: image size divisors, coarse to fine, e.g. (4, 2, 1).
    Returns (image (C, H, W) float32 in [0, 1], prob_before, prob_after).
    """
    shape = image_shape(model)
    rng = np.random.default_rng(seed)
    model.eval()
    num_classes = model(_model_input(model, np.zeros((1,) + shape, np.float32))).shape[1]
    if not 0 <= target_class < num_classes:
        raise ValueError(f"visualize: target class {target_class} out of range "
                         f"[0, {num_classes})")
    c, h, w = shape
    if jitter is None:
        jitter = h // 14
    image = np.clip(0.5 + 0.05 * rng.standard_normal(shape), 0, 1).astype(np.float32)
    prob_before = class_probability(model, image, target_class)
    one_hot = np.zeros((1, num_classes), np.float32)
    one_hot[0, target_class] = 1.0
    steps_per_scale = max(1, steps // len(scales))
    for scale in scales:
        size = max(4, h // scale)
        small = _resize(image, size) if size != h else image
        for step in range(steps_per_scale):
            dy, dx = rng.integers(-jitter, jitter + 1, 2) if jitter else (0, 0)
            shifted = np.roll(small, (dy, dx), axis=(1, 2))
            full = _resize(shifted, h) if size != h else shifted
            model(_model_input(model, full[None].astype(np.float32)))
            grad = model.backward(one_hot).reshape(shape)
            model.zero_grad()  # parameter gradients are a by-product here
            if size != h:  # chain rule through the upsampling, approximately
                grad = _resize(grad, size) * (h / size) ** 2
            grad = np.roll(grad, (-dy, -dx), axis=(1, 2)) - weight_decay * small
            norm = np.linalg.norm(grad)
            if clip and norm > clip:
                grad *= clip / norm
            small = np.clip(small + lr * grad, 0, 1)
            if blur_every and (step + 1) % blur_every == 0:
                small = np.clip(_blur(small, blur_sigma), 0, 1)
            if progress is not None:
                progress(1)
        image = (_resize(small, h) if size != h else small).astype(np.float32)
    prob_after = class_probability(model, image, target_class)
    return image, prob_before, prob_after
