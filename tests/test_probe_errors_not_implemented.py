"""The error contract for the bad input PyTorch answers with NotImplementedError (an input
rank an interpolation or border-padding mode does not take, an unknown padding mode,
affine_grid's size, per_sample_weights outside mode 'sum'): fastnn raises
fastnn.errors.NotImplementedValueError, PyTorch's type that is also a ValueError, so that
both ``except NotImplementedError`` and ``except ValueError`` catch it. These raised a
bare NotImplementedError (F.interpolate, F.pad, F.affine_grid, EmbeddingBag) or a bare
ValueError (nn.Upsample, nn.ReflectionPad*d, nn.ReplicationPad*d) before.

Abstract methods (a Module without forward, Sampler.__iter__, Dataset.__getitem__,
RNNCellBase's forward) stay a bare NotImplementedError, as PyTorch's: they are not bad
input. Each case is one bad call, written once for both libraries: ``s`` is a namespace
of torch's modules or fastnn's, ``s.t`` turns a NumPy array into the library's array."""
import types
import warnings

import numpy as np
import pytest

import fastnn.data as data
import fastnn.nn.functional as F
from fastnn import nn
from fastnn.errors import NotImplementedValueError

torch = pytest.importorskip("torch")  # (after fastnn: see fastnn's OpenMP warning)
import torch.nn.functional as TF  # noqa: E402
import torch.utils.data as tdata  # noqa: E402

OURS = types.SimpleNamespace(F=F, nn=nn, data=data, t=lambda a: a)
THEIRS = types.SimpleNamespace(F=TF, nn=torch.nn, data=tdata, t=torch.from_numpy)


def _a(*shape):
    return np.ones(shape)


def _bag(s, mode):
    """EmbeddingBag(3, 2, mode) given per_sample_weights."""
    layer = s.nn.EmbeddingBag(3, 2, mode=mode).double()
    return layer(s.t(np.array([[0, 1]])), per_sample_weights=s.t(_a(1, 2)))


def _f_bag(s, mode):
    return s.F.embedding_bag(s.t(np.array([[0, 1]])), s.t(_a(3, 2)), mode=mode,
                             per_sample_weights=s.t(_a(1, 2)))


BAD_INPUT = {   # name: (call(s), a part of fastnn's message)
    "interpolate-2d": (lambda s: s.F.interpolate(s.t(_a(1, 4)), scale_factor=2),
                       "Only 3D, 4D and 5D"),
    "interpolate-6d": (lambda s: s.F.interpolate(s.t(_a(1, 1, 2, 2, 2, 2)), size=1,
                                                 mode="area"), "got 6D"),
    "interpolate-unknown-mode": (lambda s: s.F.interpolate(s.t(_a(1, 1, 4, 4)),
                                                           scale_factor=2, mode="cubic"),
                                 "got cubic"),
    "interpolate-bilinear-3d": (lambda s: s.F.interpolate(s.t(_a(1, 1, 4)), scale_factor=2,
                                                          mode="bilinear"),
                                "bilinear mode needs 4D"),
    "interpolate-linear-4d": (lambda s: s.F.interpolate(s.t(_a(1, 1, 4, 4)), scale_factor=2,
                                                        mode="linear"),
                              "linear mode needs 3D"),
    "interpolate-trilinear-4d": (lambda s: s.F.interpolate(
        s.t(_a(1, 1, 4, 4)), scale_factor=2, mode="trilinear"), "trilinear mode needs 5D"),
    "interpolate-bicubic-5d": (lambda s: s.F.interpolate(
        s.t(_a(1, 1, 2, 2, 2)), scale_factor=2, mode="bicubic"), "5D"),
    "pad-unknown-mode": (lambda s: s.F.pad(s.t(_a(1, 2, 3)), (1, 1), mode="wrap"),
                         "Unrecognised padding mode wrap"),
    "pad-reflect-1d": (lambda s: s.F.pad(s.t(_a(4)), (1, 1), mode="reflect"),
                       "Padding size 2 is not supported for 1D"),
    "pad-reflect-5d-one-axis": (lambda s: s.F.pad(s.t(_a(1, 1, 2, 3, 4)), (1, 1),
                                                  mode="reflect"),
                                "Padding size 2 is not supported for 5D"),
    "pad-replicate-four-axes": (lambda s: s.F.pad(s.t(_a(1, 1, 3, 3, 3)), (1,) * 8,
                                                  mode="replicate"),
                                "Padding size 8"),
    "pad-circular-2d-two-axes": (lambda s: s.F.pad(s.t(_a(3, 3)), (1, 1, 1, 1),
                                                   mode="circular"),
                                 "Padding size 4 is not supported for 2D"),
    "affine-grid-size-3": (lambda s: s.F.affine_grid(s.t(_a(1, 2, 3)), (1, 1, 4),
                                                     align_corners=False), "4D and 5D sizes"),
    "affine-grid-size-6": (lambda s: s.F.affine_grid(s.t(_a(1, 2, 3)), (1, 1, 4, 4, 4, 4),
                                                     align_corners=False), "4D and 5D sizes"),
    "f-embedding-bag-weights-mean": (lambda s: _f_bag(s, "mean"), "only supported for mode"),
    "f-embedding-bag-weights-max": (lambda s: _f_bag(s, "max"), "only supported for mode"),
    "embedding-bag-weights-mean": (lambda s: _bag(s, "mean"), "only supported for mode"),
    "embedding-bag-weights-max": (lambda s: _bag(s, "max"), "only supported for mode"),
    # the layers (a bare ValueError before)
    "upsample-2d": (lambda s: s.nn.Upsample(scale_factor=2)(s.t(_a(2, 2))), "expected input"),
    "upsample-nearest-6d": (lambda s: s.nn.Upsample(scale_factor=2)(s.t(_a(1, 1, 2, 2, 2, 2))),
                            "expected input"),
    "upsample-bilinear-3d": (lambda s: s.nn.Upsample(scale_factor=2, mode="bilinear")(
        s.t(_a(1, 1, 4))), "expects a 4-D input"),
    "upsample-linear-5d": (lambda s: s.nn.Upsample(scale_factor=2, mode="linear")(
        s.t(_a(1, 1, 2, 2, 2))), "expects a 3-D input"),
    "upsampling-bilinear2d-3d": (lambda s: s.nn.UpsamplingBilinear2d(scale_factor=2)(
        s.t(_a(1, 1, 4))), "expects a 4-D input"),
    "reflection-pad1d-1d": (lambda s: s.nn.ReflectionPad1d(1)(s.t(_a(4))), "rank 2 or 3"),
    "reflection-pad2d-5d": (lambda s: s.nn.ReflectionPad2d(1)(s.t(_a(1, 1, 2, 3, 3))),
                            "rank 3 or 4"),
    "replication-pad3d-3d": (lambda s: s.nn.ReplicationPad3d(1)(s.t(_a(2, 3, 3))),
                             "rank 4 or 5"),
    "replication-pad1d-4d": (lambda s: s.nn.ReplicationPad1d(1)(s.t(_a(1, 1, 2, 3))),
                             "rank 2 or 3"),
}


def _raised(call, s):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(Exception) as info:
            call(s)
    return info.value


@pytest.mark.parametrize("name", list(BAD_INPUT))
def test_bad_input_is_not_implemented_and_a_value_error(name):
    call, match = BAD_INPUT[name]
    theirs = _raised(call, THEIRS)
    assert type(theirs) is NotImplementedError, (type(theirs), theirs)
    ours = _raised(call, OURS)
    assert isinstance(ours, NotImplementedValueError), (type(ours), ours)
    assert isinstance(ours, NotImplementedError) and isinstance(ours, ValueError)
    assert match in str(ours), (match, str(ours))


def test_circular_pad_rank_is_a_plain_value_error():
    """PyTorch's CircularPad checks the rank itself, with a ValueError (not F.pad's
    NotImplementedError): fastnn's is a ValueError only."""
    for s in (THEIRS, OURS):
        error = _raised(lambda s: s.nn.CircularPad2d(1)(s.t(_a(1, 1, 2, 3, 3))), s)
        assert isinstance(error, ValueError) and not isinstance(error, NotImplementedError)


def _module_without_forward(s):
    return s.nn.Module()(s.t(_a(2)))


def _sampler_iter(s):
    return iter(s.data.Sampler())


def _dataset_item(s):
    return s.data.Dataset()[0]


def _rnn_cell_base(s):
    cell = s.nn.RNNCellBase(3, 4, True, 1)
    return cell(s.t(_a(2, 3)))


def _subset_subclass(s):
    class Shifted(s.data.Subset):
        def __getitem__(self, i):
            return 100 + super().__getitem__(i)
    return Shifted(list(range(5)), [0, 1, 2])


ABSTRACT = {   # a method a subclass must define: not bad input, a bare NotImplementedError
    "module-without-forward": _module_without_forward,
    "module-list-forward": lambda s: s.nn.ModuleList([s.nn.ReLU()])(s.t(_a(2))),
    "sampler-iter": _sampler_iter,
    "dataset-getitem": _dataset_item,
    "rnn-cell-base-forward": _rnn_cell_base,
    # a Subset subclass with __getitem__ but not __getitems__ (the loader fetches batches
    # through __getitems__, bypassing __getitem__): fastnn accepted it before
    "subset-getitem-without-getitems": _subset_subclass,
}


@pytest.mark.parametrize("name", list(ABSTRACT))
def test_missing_method_is_a_bare_not_implemented_error(name):
    theirs = _raised(ABSTRACT[name], THEIRS)
    ours = _raised(ABSTRACT[name], OURS)
    assert type(theirs) is NotImplementedError, (type(theirs), theirs)
    assert type(ours) is NotImplementedError, (type(ours), ours)


def test_subset_subclass_with_both_methods_is_used_by_the_loader():
    class Shifted(data.Subset):
        def __getitem__(self, i):
            return 100.0 + super().__getitem__(i)

        def __getitems__(self, indices):
            return [self[i] for i in indices]

    subset = Shifted(np.arange(5.0), [0, 1, 2])
    batches = list(data.DataLoader(subset, batch_size=3))
    np.testing.assert_array_equal(batches[0], [100.0, 101.0, 102.0])


class _DeviceStandIn:
    """A stand-in CUDA device array (``__cuda_array_interface__`` over a NumPy array's
    memory): enough to reach the no-CUDA-kernel errors, which come before any work."""

    def __init__(self, a):
        self.shape, self.dtype = a.shape, a.dtype
        self.__cuda_array_interface__ = {
            "data": (a.__array_interface__["data"][0], False), "shape": a.shape,
            "typestr": a.dtype.str, "strides": None, "version": 3}


@pytest.mark.parametrize("call, hint", [
    (lambda d: F.normalize(d), "fastnn.device.to_host of each device array"),
    (lambda d: F.mse_loss(d, d, weight=np.ones(3)),
     "fastnn.device.to_host(input), fastnn.device.to_host(target)"),
])
def test_no_cuda_kernel_hint_names_real_arguments(call, hint):
    # the hint said fastnn.device.to_host(x): no parameter of these functions is x
    with pytest.raises(NotImplementedValueError) as got:
        call(_DeviceStandIn(np.ones(3)))
    assert hint in str(got.value) and "to_host(x)" not in str(got.value), str(got.value)
