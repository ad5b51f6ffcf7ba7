"""The error contract for the mistakes PyTorch answers with a RuntimeError, IndexError or
AssertionError: fastnn raises an exception of PyTorch's type that is also a ValueError
(fastnn.errors' RuntimeValueError, IndexValueError, AssertionValueError), so that both
``except RuntimeError`` (code ported from PyTorch) and ``except ValueError`` (fastnn's
convention) catch it. These raised a bare RuntimeError/IndexError/AssertionError before
(F.conv2d, the pools, the norms, scaled_dot_product_attention, the losses, the rnn
helpers, grid_sample, the module and optimizer hooks, the containers' indices, ...).

Each case is one bad call, written once for both libraries: ``s`` is a namespace of
torch's modules or fastnn's, ``s.t`` turns a NumPy array into the library's array."""
import types
import warnings

import numpy as np
import pytest

import fastnn
import fastnn.nn.functional as F
from fastnn import nn, optim
from fastnn.data import default_collate
from fastnn.errors import DtypeError
from fastnn.nn import utils as nn_utils
from fastnn.nn.utils import rnn

torch = pytest.importorskip("torch")  # (after fastnn: see fastnn's OpenMP warning)
import torch.nn.functional as TF  # noqa: E402
import torch.nn.utils.rnn as trnn  # noqa: E402
from torch.utils.data import default_collate as t_collate  # noqa: E402

OURS = types.SimpleNamespace(F=F, nn=nn, rnn=rnn, utils=nn_utils, optim=optim,
                             collate=default_collate, t=lambda a: a)
THEIRS = types.SimpleNamespace(F=TF, nn=torch.nn, rnn=trnn, utils=torch.nn.utils,
                               optim=torch.optim, collate=t_collate, t=torch.from_numpy)


def _a(*shape, dtype=np.float64):
    return np.ones(shape, dtype)


def _i(*values):
    return np.array(values, np.int64)


X4 = np.arange(50.0).reshape(1, 2, 5, 5)
W4 = np.ones((3, 2, 3, 3))
X3 = np.ones((1, 2, 6))


def _hook_module(s, kind):
    """A Linear with a hook returning what PyTorch refuses, called (or saved) once."""
    layer = s.nn.Linear(3, 2)
    x = s.t(_a(4, 3))
    if kind == "forward_pre":
        layer.register_forward_pre_hook(lambda m, a, k: 5, with_kwargs=True)
        return layer(x)
    if kind == "state_dict":
        layer.register_state_dict_post_hook(lambda m, d, p, lm: {})
        return layer.state_dict()
    layer.register_load_state_dict_post_hook(lambda m, keys: 1)
    return layer.load_state_dict(layer.state_dict())


def _backward_hook_count(s):
    """A full backward hook returning two gradients for one input."""
    layer = s.nn.Linear(3, 2)
    layer.register_full_backward_hook(lambda m, gi, go: (gi[0], gi[0]))
    if s is THEIRS:
        x = torch.ones(4, 3, dtype=torch.float64, requires_grad=True)
        return layer.double()(x).sum().backward()
    layer = layer.double()
    y = layer(_a(4, 3))
    return layer.backward(np.ones_like(y))


def _step_pre_hook(s):
    p = s.nn.Parameter(s.t(_a(3)))
    opt = s.optim.SGD([p], lr=0.1)
    opt.register_step_pre_hook(lambda o, a, k: 7)
    if s is THEIRS:
        p.grad = torch.ones(3, dtype=torch.float64)
    return opt.step()


def _adaptive(s, x, target, n_classes=6):
    layer = s.nn.AdaptiveLogSoftmaxWithLoss(4, n_classes, [2])
    if s is THEIRS:
        return layer.double()(s.t(x), s.t(target))
    return layer.double()(x, target)


def _fuse_in_training(s):
    return s.utils.fuse_linear_bn_eval(s.nn.Linear(3, 2), s.nn.BatchNorm1d(2))


def _fuse_features(s):
    return s.utils.fuse_linear_bn_eval(s.nn.Linear(3, 2).eval(), s.nn.BatchNorm1d(4).eval())


def _encoder_without_layers(s):
    layer = s.nn.TransformerEncoderLayer(4, 2, 8, dropout=0.0)
    stack = s.nn.TransformerEncoder(layer, 0, enable_nested_tensor=False)
    return stack(s.t(_a(3, 2, 4, dtype=np.float32)))


def _vector_to_parameters(s):
    params = list(s.nn.Linear(3, 2).double().parameters())
    return s.utils.vector_to_parameters(s.t(_a(5)), params)


CASES = {   # name: (call(s), a part of fastnn's message or None)
    # ------------------------------------------------- activations, linear, dropout
    "celu-alpha-0": (lambda s: s.F.celu(s.t(_a(3)), alpha=0.0), "alpha cannot be 0"),
    "gelu-approximate": (lambda s: s.F.gelu(s.t(_a(3)), approximate="fast"),
                         "either none or tanh"),
    "linear-shapes": (lambda s: s.F.linear(s.t(_a(2, 3)), s.t(_a(4, 5))),
                      "cannot be multiplied"),
    "linear-bias": (lambda s: s.F.linear(s.t(_a(2, 3)), s.t(_a(4, 3)), s.t(_a(5))), "bias"),
    "glu-scalar": (lambda s: s.F.glu(s.t(_a())), "scalars"),
    "glu-odd": (lambda s: s.F.glu(s.t(_a(2, 3))), "must be even"),
    "prelu-weight-2d": (lambda s: s.F.prelu(s.t(_a(2, 3)), s.t(_a(1, 3))), "scalar or 1D"),
    "prelu-channels": (lambda s: s.F.prelu(s.t(_a(2, 3)), s.t(_a(2))), "Mismatch"),
    "prelu-0d": (lambda s: s.F.prelu(s.t(_a()), s.t(_a(2))), "zero-dim"),
    "dropout1d-rank": (lambda s: s.F.dropout1d(s.t(_a(2, 3, 4, 5))), "2D or 3D"),
    "channel-shuffle-groups": (lambda s: s.F.channel_shuffle(s.t(_a(1, 4, 2, 2)), 0),
                               "must be positive"),
    "interpolate-empty-channels": (lambda s: s.F.interpolate(s.t(_a(1, 0, 4)), size=2),
                                   "Non-empty"),
    "interpolate-size-0": (lambda s: s.F.interpolate(s.t(_a(1, 1, 4)), size=0),
                           "greater than 0"),
    # ---------------------------------------------------------------- convolutions
    "conv-stride-items": (lambda s: s.F.conv2d(s.t(X4), s.t(W4), stride=(1, 1, 1)),
                          "stride"),
    "conv-rank": (lambda s: s.F.conv2d(s.t(_a(2, 3)), s.t(W4)), "input"),
    "conv-weight-rank": (lambda s: s.F.conv2d(s.t(X4), s.t(_a(3, 2, 3))), None),
    "conv-groups-0": (lambda s: s.F.conv2d(s.t(X4), s.t(W4), groups=0),
                      "non-positive groups"),
    "conv-weight-below-groups": (lambda s: s.F.conv2d(s.t(_a(1, 4, 5, 5)),
                                                      s.t(_a(1, 2, 3, 3)), groups=2),
                                 "at least 2"),
    "conv-kernel-0": (lambda s: s.F.conv2d(s.t(X4), s.t(_a(3, 2, 0, 3))), None),
    "conv-weight-not-divisible": (lambda s: s.F.conv2d(s.t(_a(1, 4, 5, 5)),
                                                       s.t(_a(3, 2, 3, 3)), groups=2),
                                  "divisible by 2"),
    "conv-stride-0": (lambda s: s.F.conv2d(s.t(X4), s.t(W4), stride=0), "stride"),
    "conv-dilation-0": (lambda s: s.F.conv2d(s.t(X4), s.t(W4), dilation=0), "dilation"),
    "conv-channels": (lambda s: s.F.conv2d(s.t(_a(1, 3, 5, 5)), s.t(W4)), "channels"),
    "conv-groups-channels": (lambda s: s.F.conv2d(s.t(_a(1, 4, 5, 5)), s.t(_a(2, 1, 3, 3)),
                                                  groups=2), "channels"),
    "conv-same-strided": (lambda s: s.F.conv2d(s.t(X4), s.t(W4), stride=2, padding="same"),
                          "strided"),
    "conv-padding-string": (lambda s: s.F.conv2d(s.t(X4), s.t(W4), padding="full"),
                            "padding"),
    "conv-negative-padding": (lambda s: s.F.conv2d(s.t(X4), s.t(W4), padding=-1),
                              "negative padding"),
    "conv-kernel-too-large": (lambda s: s.F.conv2d(s.t(_a(1, 2, 2, 2)), s.t(W4)),
                              "Kernel size can't be greater"),
    "conv1d-kernel-too-large": (lambda s: s.F.conv1d(s.t(_a(1, 2, 2)), s.t(_a(3, 2, 3))),
                                "Kernel size can't be greater"),
    "conv-transpose-negative-padding": (lambda s: s.F.conv_transpose2d(
        s.t(X4), s.t(_a(2, 3, 3, 3)), padding=-1), "negative padding"),
    "conv-transpose-negative-output-padding": (lambda s: s.F.conv_transpose2d(
        s.t(X4), s.t(_a(2, 3, 3, 3)), output_padding=-1), "negative output_padding"),
    "conv-transpose-output-padding": (lambda s: s.F.conv_transpose2d(
        s.t(X4), s.t(_a(2, 3, 3, 3)), output_padding=1), "output padding must be smaller"),
    "conv-transpose-channels": (lambda s: s.F.conv_transpose2d(
        s.t(X4), s.t(_a(3, 3, 3, 3))), "channels"),
    "conv-transpose-output-too-small": (lambda s: s.F.conv_transpose2d(
        s.t(_a(1, 1, 1, 1)), s.t(_a(1, 1, 3, 3)), padding=2), "too small"),
    # ------------------------------------------------------------------------- pools
    "pool-kernel-items": (lambda s: s.F.max_pool2d(s.t(X4), (2, 2, 2)), "kernel_size"),
    "pool-kernel-0": (lambda s: s.F.max_pool2d(s.t(X4), 0), "greater than zero"),
    "pool-stride-0": (lambda s: s.F.max_pool2d(s.t(X4), 2, stride=0), "stride"),
    "pool-dilation-0": (lambda s: s.F.max_pool2d(s.t(X4), 2, dilation=0), "dilation"),
    "pool-negative-pad": (lambda s: s.F.max_pool2d(s.t(X4), 2, padding=-1), "non-negative"),
    "pool-pad-over-half": (lambda s: s.F.max_pool2d(s.t(X4), 2, padding=2), "at most half"),
    "pool-rank": (lambda s: s.F.max_pool2d(s.t(_a(3, 4)), 2), "3D or 4D"),
    "pool-output-too-small": (lambda s: s.F.max_pool2d(s.t(_a(1, 1, 2, 2)), 3), "too small"),
    "max-pool1d-rank": (lambda s: s.F.max_pool1d(s.t(_a(4)), 2), "2D or 3D"),
    # ----------------------------------------------------------------------- norms
    "batch-norm-stat-size": (lambda s: s.F.batch_norm(s.t(_a(4, 3)), s.t(_a(3)), s.t(_a(4))),
                             "should contain 3 elements"),
    "batch-norm-eval-no-stats": (lambda s: s.F.batch_norm(s.t(_a(4, 3)), None, None),
                                 "running_mean must be defined"),
    "layer-norm-shape": (lambda s: s.F.layer_norm(s.t(_a(2, 3)), (4,)), "normalized_shape"),
    "layer-norm-weight": (lambda s: s.F.layer_norm(s.t(_a(2, 3)), (3,), s.t(_a(4))),
                          "same shape as normalized_shape"),
    "group-norm-rank": (lambda s: s.F.group_norm(s.t(_a(3)), 1), "at least 2 dimensions"),
    "group-norm-divisible": (lambda s: s.F.group_norm(s.t(_a(2, 3, 4)), 2), "divisible"),
    "group-norm-weight": (lambda s: s.F.group_norm(s.t(_a(2, 4, 3)), 2, s.t(_a(3))),
                          "vector of size"),
    "rms-norm-shape": (lambda s: s.F.rms_norm(s.t(_a(2, 3)), (4,)), "normalized_shape"),
    "rms-norm-weight": (lambda s: s.F.rms_norm(s.t(_a(2, 3)), (3,), s.t(_a(4))),
                        "same shape as normalized_shape"),
    # ------------------------------------------------------- embedding, one_hot, norms
    "embedding-weight-1d": (lambda s: s.F.embedding(s.t(_i(0)), s.t(_a(3))), "2-D"),
    "embedding-padding-idx": (lambda s: s.F.embedding(s.t(_i(0)), s.t(_a(3, 2)),
                                                      padding_idx=5), "Padding_idx"),
    "embedding-index": (lambda s: s.F.embedding(s.t(_i(5)), s.t(_a(3, 2))), "out of range"),
    "one-hot-num-classes": (lambda s: s.F.one_hot(s.t(_i(0, 1)), -2), "num_classes"),
    "one-hot-empty": (lambda s: s.F.one_hot(s.t(_i())), "empty tensor"),
    "one-hot-negative": (lambda s: s.F.one_hot(s.t(_i(-1, 0))), "non-negative"),
    "one-hot-too-large": (lambda s: s.F.one_hot(s.t(_i(3)), 2), "smaller than num_classes"),
    "normalize-dim-twice": (lambda s: s.F.normalize(s.t(_a(2, 3)), dim=(1, 1)),
                            "appears multiple times"),
    "normalize-inf-empty": (lambda s: s.F.normalize(s.t(_a(2, 0)), p=float("inf")),
                            "cannot compute"),
    "pdist-rank": (lambda s: s.F.pdist(s.t(_a(2, 3, 4))), "2D"),
    "pdist-negative-p": (lambda s: s.F.pdist(s.t(_a(2, 3)), p=-1.0), "non-negative"),
    "bilinear-batch": (lambda s: s.F.bilinear(s.t(_a(2, 3)), s.t(_a(4, 5)),
                                              s.t(_a(6, 3, 5))), "batch dimensions"),
    "bilinear-weight": (lambda s: s.F.bilinear(s.t(_a(2, 3)), s.t(_a(2, 5)),
                                               s.t(_a(6, 3, 4))), "weight"),
    "bilinear-bias": (lambda s: s.F.bilinear(s.t(_a(2, 3)), s.t(_a(2, 5)), s.t(_a(6, 3, 5)),
                                             s.t(_a(5))), "bias"),
    "rrelu-bounds": (lambda s: s.F.rrelu(s.t(_a(3)), 0.5, 0.1, training=True),
                     "Lower bound"),
    # ----------------------------------------------------------------------- losses
    "smooth-l1-beta": (lambda s: s.F.smooth_l1_loss(s.t(_a(3)), s.t(_a(3)), beta=-1.0),
                       "negative values for beta"),
    "huber-delta": (lambda s: s.F.huber_loss(s.t(_a(3)), s.t(_a(3)), delta=0.0),
                    "non-positive values for delta"),
    "bce-input-range": (lambda s: s.F.binary_cross_entropy(s.t(_a(3) * 2), s.t(_a(3))),
                        "between 0 and 1"),
    "bce-weight": (lambda s: s.F.binary_cross_entropy(s.t(_a(3) / 2), s.t(_a(3)),
                                                      s.t(_a(4))), "broadcast"),
    "nll-target-size": (lambda s: s.F.nll_loss(s.t(_a(2, 3, 4)), s.t(_i(0, 1)[:, None])),
                        "Expected target size"),
    "nll-weight": (lambda s: s.F.nll_loss(s.t(_a(2, 3)), s.t(_i(0, 1)), s.t(_a(4))),
                   "weight tensor should be defined"),
    "nll-target-range": (lambda s: s.F.nll_loss(s.t(_a(2, 3)), s.t(_i(0, 3))),
                         "out of bounds"),
    "cross-entropy-smoothing": (lambda s: s.F.cross_entropy(s.t(_a(2, 3)), s.t(_i(0, 1)),
                                                            label_smoothing=1.5),
                                "label_smoothing"),
    "cross-entropy-probabilities-ignore": (lambda s: s.F.cross_entropy(
        s.t(_a(2, 3)), s.t(_a(2, 3) / 3), ignore_index=1), "ignore_index"),
    "cross-entropy-target-range": (lambda s: s.F.cross_entropy(s.t(_a(2, 3)), s.t(_i(0, 5))),
                                   "out of bounds"),
    "triplet-ranks": (lambda s: s.F.triplet_margin_with_distance_loss(
        s.t(_a(2, 3)), s.t(_a(2, 3)), s.t(_a(3))), "same number of"),
    "linear-cross-entropy-unbatched": (lambda s: s.F.linear_cross_entropy(
        s.t(_a(3)), s.t(_a(4, 2, 3)), s.t(_i(0))), "requires batched"),
    "linear-cross-entropy-features": (lambda s: s.F.linear_cross_entropy(
        s.t(_a(2, 3)), s.t(_a(4, 5)), s.t(_i(0, 1))), "last dimensions"),
    # --------------------------------------------------------------------- attention
    "sdpa-causal-and-mask": (lambda s: s.F.scaled_dot_product_attention(
        s.t(_a(2, 3)), s.t(_a(4, 3)), s.t(_a(4, 3)), s.t(_a(2, 4)), is_causal=True),
        "is_causal"),
    "sdpa-mask-grows": (lambda s: s.F.scaled_dot_product_attention(
        s.t(_a(2, 3)), s.t(_a(4, 3)), s.t(_a(4, 3)), s.t(_a(5, 2, 4))), "attn_mask"),
    "sdpa-gqa-no-heads": (lambda s: s.F.scaled_dot_product_attention(
        s.t(_a(2, 3)), s.t(_a(2, 3)), s.t(_a(2, 3)), enable_gqa=True), "heads axis"),
    "sdpa-gqa-heads": (lambda s: s.F.scaled_dot_product_attention(
        s.t(_a(1, 3, 2, 4)), s.t(_a(1, 2, 2, 4)), s.t(_a(1, 2, 2, 4)), enable_gqa=True),
        "multiple"),
    "sdpa-embedding": (lambda s: s.F.scaled_dot_product_attention(
        s.t(_a(2, 3)), s.t(_a(4, 5)), s.t(_a(4, 5))), None),
    "sdpa-leading": (lambda s: s.F.scaled_dot_product_attention(
        s.t(_a(2, 2, 3)), s.t(_a(3, 4, 3)), s.t(_a(3, 4, 3))), "broadcast"),
    # ------------------------------------------------------------ grid_sample, affine
    "affine-grid-batch": (lambda s: s.F.affine_grid(s.t(_a(2, 2, 3)), (3, 1, 4, 4),
                                                    align_corners=False), "batch"),
    "grid-sample-rank": (lambda s: s.F.grid_sample(s.t(_a(1, 1, 4, 4)), s.t(_a(1, 3, 3)),
                                                   align_corners=False), "4D or 5D"),
    "grid-sample-bicubic-3d": (lambda s: s.F.grid_sample(
        s.t(_a(1, 1, 2, 2, 2)), s.t(_a(1, 1, 1, 1, 3)), mode="bicubic",
        align_corners=False), "bicubic"),
    "grid-sample-empty": (lambda s: s.F.grid_sample(s.t(_a(1, 1, 0, 4)), s.t(_a(1, 2, 2, 2)),
                                                    align_corners=False), "non-empty"),
    # ------------------------------------------------------------------- rnn helpers
    "pack-lengths-2d": (lambda s: s.rnn.pack_padded_sequence(s.t(_a(4, 3, 2)),
                                                             [[4, 3, 2]]), "1D"),
    "pack-empty": (lambda s: s.rnn.pack_padded_sequence(s.t(_a(4, 0, 2)), []), "empty"),
    "pack-lengths-count": (lambda s: s.rnn.pack_padded_sequence(s.t(_a(4, 3, 2)), [4, 2]),
                           "batch_size"),
    "pack-unsorted": (lambda s: s.rnn.pack_padded_sequence(s.t(_a(4, 3, 2)), [2, 3, 1]),
                      "decreasing"),
    "pack-zero-length": (lambda s: s.rnn.pack_padded_sequence(s.t(_a(4, 3, 2)), [3, 2, 0]),
                         "greater than 0"),
    "pack-input-1d": (lambda s: s.rnn.pack_padded_sequence(s.t(_a(4)), [4]), "dimensions"),
    "pad-not-iterable": (lambda s: s.rnn.pad_sequence(3), "iterable"),
    "pad-empty": (lambda s: s.rnn.pad_sequence([]), "empty list"),
    "pad-side": (lambda s: s.rnn.pad_sequence([s.t(_a(2))], padding_side="up"),
                 "left or right"),
    "pad-trailing": (lambda s: s.rnn.pad_sequence([s.t(_a(2, 1)), s.t(_a(2, 3))]),
                     "trailing shape"),
    "pad-0d": (lambda s: s.rnn.pad_sequence([s.t(_a()), s.t(_a())]), "dimensions"),
    "packed-sequence-one-array": (lambda s: s.rnn.PackedSequence(s.t(_a(4, 2))),
                                  "length 2"),
    # ----------------------------------------------------------------------- layers
    "embedding-layer-index": (lambda s: s.nn.Embedding(3, 2)(s.t(_i(0, 3))),
                              "out of range"),
    "embedding-bag-index": (lambda s: s.nn.EmbeddingBag(3, 2)(s.t(_i(0, 5)[None])),
                            "out of range"),   # (an IndexError before: torch's RuntimeError)
    "embedding-bag-max-norm-index": (lambda s: s.nn.EmbeddingBag(3, 2, max_norm=1.0)(
        s.t(_i(0, 5)[None])), "out of range"),   # (torch's IndexError here)
    "f-embedding-bag-index": (lambda s: s.F.embedding_bag(s.t(_i(0, 5)[None]),
                                                          s.t(_a(3, 2))), "outside"),
    "adaptive-softmax-batch": (lambda s: _adaptive(s, _a(2, 4), _i(0, 1, 2)),
                               "same size in the batch"),
    "adaptive-softmax-1d-target-3d-input": (lambda s: _adaptive(s, _a(2, 2, 4), _i(0, 1)),
                                            "expects 2D input"),
    "adaptive-softmax-0d-target": (lambda s: _adaptive(s, _a(2, 4), np.array(1)),
                                   "expects 1D input"),
    "adaptive-softmax-2d-target": (lambda s: _adaptive(s, _a(2, 4), _i(0, 1)[:, None]),
                                   "multi-target"),
    "adaptive-softmax-features": (lambda s: _adaptive(s, _a(2, 5), _i(0, 1)),
                                  "features"),
    "adaptive-softmax-target-range": (lambda s: _adaptive(s, _a(2, 4), _i(0, 6)),
                                      "Target values"),
    "constant-pad2d-rank": (lambda s: s.nn.ConstantPad2d(1, 0.0)(s.t(_a(4))), "rank 2"),
    "zero-pad3d-rank": (lambda s: s.nn.ZeroPad3d(1)(s.t(_a(4, 4))), "rank 3"),
    "upsample-output-empty": (lambda s: s.nn.Upsample(scale_factor=0.1)(s.t(_a(1, 1, 4))),
                              "would have size"),
    "upsample-area-input-empty": (lambda s: s.nn.Upsample(size=(2, 2), mode="area")(
        s.t(_a(1, 1, 0, 4))), "would have size"),
    "upsample-no-channels": (lambda s: s.nn.Upsample(scale_factor=2, mode="bilinear")(
        s.t(_a(1, 0, 4, 4))), "with channels"),
    "upsample-area-5d-no-channels": (lambda s: s.nn.Upsample(size=2, mode="area")(
        s.t(_a(1, 0, 4, 4, 4))), "with channels"),
    "encoder-without-layers": (_encoder_without_layers, "no layers"),
    "sequential-index": (lambda s: s.nn.Sequential(s.nn.ReLU())[3], "out of range"),
    "module-list-index": (lambda s: s.nn.ModuleList([s.nn.ReLU()])[-2], "out of range"),
    "module-list-setitem": (lambda s: s.nn.ModuleList([s.nn.ReLU()]).__setitem__(
        4, s.nn.ReLU()), "out of range"),
    "sequential-delitem": (lambda s: s.nn.Sequential(s.nn.ReLU()).__delitem__(2),
                           "out of range"),
    "forward-pre-hook-return": (lambda s: _hook_module(s, "forward_pre"), "pre-hook"),
    "state-dict-post-hook-return": (lambda s: _hook_module(s, "state_dict"), "post-hook"),
    "load-post-hook-return": (lambda s: _hook_module(s, "load"), "not expected to return"),
    "backward-hook-count": (_backward_hook_count, "invalid number"),
    # ------------------------------------------------- nn.utils, optim, data collate
    "vector-to-parameters": (_vector_to_parameters, "elements"),
    "fuse-linear-bn-training": (_fuse_in_training, "eval"),
    "fuse-linear-bn-features": (_fuse_features, "num_features"),
    "fuse-conv-bn-channels": (lambda s: s.utils.fuse_conv_bn_weights(
        s.t(_a(3, 2, 3, 3)), s.t(_a(3)), s.t(_a(4)), s.t(_a(4)), 1e-5, s.t(_a(4)),
        s.t(_a(4))), "channels"),
    "skip-init-not-a-module": (lambda s: s.utils.skip_init(int), "Expected a Module"),
    "clip-grad-nonfinite": (lambda s: s.utils.get_total_norm(
        [s.t(np.array([np.inf, 1.0]))], error_if_nonfinite=True), "non-finite"),
    "step-pre-hook-return": (_step_pre_hook, "pre-hook"),
    "lbfgs-empty-group": (lambda s: s.optim.LBFGS([{"params": []}]).step(lambda: 0.0),
                          "empty"),
    "collate-array-shapes": (lambda s: s.collate([s.t(_a(2)), s.t(_a(3))]), "equal size"),
    "collate-list-lengths": (lambda s: s.collate([[1, 2], [3]]), "equal size"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_call_is_torchs_type_and_a_value_error(name):
    call, match = CASES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(Exception) as theirs:
            call(THEIRS)
        expected = type(theirs.value)
        assert expected in (RuntimeError, IndexError, AssertionError), theirs.value
        with pytest.raises(expected, match=match) as ours:
            call(OURS)
    assert isinstance(ours.value, ValueError), (type(ours.value), ours.value)


# A dtype mistake: fastnn's TypeError (as before), the contract's ValueError, and the
# RuntimeError PyTorch raises for it ("mat1 and mat2 must have the same dtype"). These
# were a plain TypeError, which ``except ValueError`` and ``except RuntimeError`` missed.
DTYPE_CASES = {
    "linear-input-dtype": lambda s: s.nn.Linear(3, 2)(s.t(_a(4, 3))),
    "f-linear-weight-dtype": lambda s: s.F.linear(s.t(_a(4, 3, dtype=np.float32)),
                                                  s.t(_a(2, 3))),
    "conv2d-input-dtype": lambda s: s.nn.Conv2d(1, 2, 3)(s.t(_a(1, 1, 5, 5))),
    "cross-entropy-float-labels": lambda s: s.nn.CrossEntropyLoss()(
        s.t(_a(2, 3)), s.t(_a(2))),
    "nll-loss-float-labels": lambda s: s.F.nll_loss(s.t(_a(2, 3)), s.t(_a(2))),
    "embedding-float-indices": lambda s: s.nn.Embedding(3, 2)(s.t(_a(2))),
}


@pytest.mark.parametrize("name", list(DTYPE_CASES))
def test_dtype_mistake_is_torchs_runtime_error_a_type_and_a_value_error(name):
    call = DTYPE_CASES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RuntimeError):
            call(THEIRS)
        with pytest.raises(RuntimeError) as ours:
            call(OURS)
    assert isinstance(ours.value, ValueError) and isinstance(ours.value, TypeError)


@pytest.mark.parametrize("call", [
    lambda: fastnn.ops.relu(np.ones(3, np.float16)),
    lambda: fastnn.ops.linear_forward(np.ones((2, 3), np.float32), np.ones((2, 3)), None),
    lambda: nn.Linear(3, 2)(np.ones((2, 3), np.int64)),
    lambda: nn.Parameter(np.ones(3, np.int32)),
], ids=["op-float16", "op-mixed", "layer-int", "parameter-int"])
def test_dtype_errors_are_every_type_a_user_may_catch(call):
    with pytest.raises(DtypeError) as caught:
        call()
    assert all(isinstance(caught.value, t) for t in (ValueError, TypeError, RuntimeError))
