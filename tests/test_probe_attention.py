"""Found by probing attention and the normalisation layers against torch 2.13:
scaled_dot_product_attention refuses an attn_mask that would grow the attention
weights (PyTorch adds it in place) and checks enable_gqa's head counts of key and value
both, as PyTorch's."""
import numpy as np
import pytest

import fastnn.nn.functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _both(q, k, v, **kw):
    """(torch's result or exception type, fastnn's)."""
    tkw = {a: torch.from_numpy(b) if isinstance(b, np.ndarray) else b for a, b in kw.items()}
    try:
        theirs = TF.scaled_dot_product_attention(*map(torch.from_numpy, (q, k, v)), **tkw)
        theirs = theirs.numpy()
    except Exception as ex:   # noqa: BLE001
        theirs = type(ex)
    try:
        ours = F.scaled_dot_product_attention(q, k, v, **kw)
    except Exception as ex:   # noqa: BLE001
        ours = type(ex)
    return theirs, ours


@pytest.mark.parametrize("mask_shape", [(2, 3, 5), (1, 3, 5), (2, 1, 3, 5), (4, 1, 1)])
def test_attention_mask_that_grows_the_weights_is_refused(mask_shape):
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal(s) for s in ((4, 3, 2), (4, 5, 2), (4, 5, 3)))
    for mask in (rng.random(mask_shape) < 0.5, rng.standard_normal(mask_shape)):
        if mask_shape == (4, 1, 1):   # (broadcasts to (4, 3, 5) without growing it)
            theirs, ours = _both(q, k, v, attn_mask=mask)
            np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)
            continue
        q2 = q[0]   # weights (3, 5): a mask of more axes would grow them
        theirs, ours = _both(q2, k[0], v[0], attn_mask=mask)
        assert theirs is RuntimeError and issubclass(ours, RuntimeError) \
            and issubclass(ours, ValueError)   # (fastnn's RuntimeValueError)


@pytest.mark.parametrize("shapes, ok", [
    (((1, 4, 2, 3), (1, 2, 3, 3), (1, 1, 3, 2)), True),
    (((1, 4, 2, 3), (1, 1, 3, 3), (1, 2, 3, 2)), True),
    (((1, 1, 2, 3), (1, 1, 3, 3), (1, 2, 3, 2)), False),   # value's 2 heads do not divide 1
    (((1, 2, 3), (1, 3, 3), (2, 3, 2)), False),
    (((1, 3, 2, 3), (1, 2, 3, 3), (1, 2, 3, 2)), False)])
def test_grouped_query_attention_checks_key_and_value_heads(shapes, ok):
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal(s) for s in shapes)
    theirs, ours = _both(q, k, v, enable_gqa=True)
    if ok:
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)
    else:
        assert theirs is RuntimeError and issubclass(ours, RuntimeError) \
            and issubclass(ours, ValueError)   # (fastnn's RuntimeValueError)


def test_grouped_query_attention_needs_a_heads_axis():
    x = np.ones((3, 4))
    theirs, ours = _both(x, x, x, enable_gqa=True)
    assert theirs is IndexError and issubclass(ours, IndexError) \
        and issubclass(ours, ValueError)   # (fastnn's IndexValueError)


@pytest.mark.parametrize("cls, tcls, shape", [
    (1, "InstanceNorm1d", (2, 5, 4)), (1, "InstanceNorm1d", (5, 4)),
    (2, "InstanceNorm2d", (2, 5, 3, 2)), (2, "InstanceNorm2d", (2, 3, 4)),
    (3, "InstanceNorm3d", (1, 2, 3, 2, 2))])
@pytest.mark.filterwarnings("ignore:input.s size at dim")
def test_instance_norm_channels_other_than_num_features(backend, cls, tcls, shape):
    """PyTorch normalises any channel count (with a UserWarning) when num_features is
    unused (no affine, no running statistics); with running statistics that is its
    RuntimeError, with affine parameters its ValueError."""
    from fastnn import nn
    layer_cls, torch_cls = getattr(nn, tcls), getattr(torch.nn, tcls)
    rng = np.random.default_rng(cls)
    x = rng.standard_normal(shape)
    g = rng.standard_normal(shape)
    for training in (True, False):
        ours = layer_cls(3, dtype=np.float64).train(training)
        theirs = torch_cls(3).train(training)
        tx = torch.tensor(x, requires_grad=True)
        with pytest.warns(UserWarning, match="does not match num_features"):
            expected = theirs(tx)
        with pytest.warns(UserWarning, match="does not match num_features"):
            out = ours(x)
        expected.backward(torch.tensor(g))
        np.testing.assert_allclose(out, expected.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(ours.backward(g), tx.grad.numpy(), rtol=1e-10, atol=1e-12)
        tracked = layer_cls(3, track_running_stats=True, dtype=np.float64).train(training)
        with pytest.raises(RuntimeError):
            torch_cls(3, track_running_stats=True).train(training)(tx)
        with pytest.raises(RuntimeError, match="3 channels"):
            tracked(x)
        assert (tracked.running_mean == 0).all() and (tracked.running_var == 1).all()
        for stats in (False, True):
            with pytest.raises(ValueError):
                torch_cls(3, affine=True, track_running_stats=stats).train(training)(tx)
            with pytest.raises(ValueError):
                layer_cls(3, affine=True, track_running_stats=stats,
                          dtype=np.float64).train(training)(x)


@pytest.mark.parametrize("mask_shape", [(1, 3, 5), (2, 3, 4), (4, 3, 5)])
def test_unbatched_attention_3d_mask_of_another_shape_is_an_assertion(mask_shape):
    """PyTorch's shape check asserts an unbatched query's 3-D attn_mask is (heads, L,
    S) (AssertionError), where a batched query's wrong 3-D mask is a RuntimeError."""
    from fastnn import nn
    q, k = np.ones((3, 4)), np.ones((5, 4))
    mask = np.zeros(mask_shape)
    with pytest.raises(AssertionError):
        torch.nn.MultiheadAttention(4, 2).double()(*map(torch.tensor, (q, k, k)),
                                                   attn_mask=torch.tensor(mask))
    layer = nn.MultiheadAttention(4, 2, dtype=np.float64)
    with pytest.raises(AssertionError, match="attn_mask"):
        layer(q, k, k, attn_mask=mask)
    with pytest.raises(RuntimeError):   # batched: PyTorch's RuntimeError, as before
        layer(q[:, None], k[:, None], k[:, None], attn_mask=np.zeros((1, 3, 5)))


def _mha_arguments(rng, e, kdim, vdim, separate, add_bias_kv, with_bias):
    def w(*shape):
        return rng.standard_normal(shape) * 0.5
    return dict(embed_dim_to_check=e, num_heads=2,
                in_proj_weight=None if separate else w(3 * e, e),
                in_proj_bias=w(3 * e) if with_bias else None,
                bias_k=w(1, 1, e) if add_bias_kv else None,
                bias_v=w(1, 1, e) if add_bias_kv else None, add_zero_attn=add_bias_kv,
                dropout_p=0.3, out_proj_weight=w(e, e),
                out_proj_bias=w(e) if with_bias else None, training=False,
                use_separate_proj_weight=separate,
                q_proj_weight=w(e, e) if separate else None,
                k_proj_weight=w(e, kdim) if separate else None,
                v_proj_weight=w(e, vdim) if separate else None)


@pytest.mark.parametrize("kdim, vdim, separate, add_bias_kv, with_bias, unbatched", [
    (4, 4, False, False, True, False), (4, 4, True, True, False, False),
    (3, 5, True, False, True, False), (3, 5, True, True, True, True),
    (4, 4, False, True, True, True)])
@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")
def test_multi_head_attention_forward_matches_torch(kdim, vdim, separate, add_bias_kv,
                                                    with_bias, unbatched):
    """torch.nn.functional's multi_head_attention_forward (fastnn had none): the
    weights given, sequence-first or unbatched, masks as MultiheadAttention's."""
    from fastnn import random as fastnn_random
    rng = np.random.default_rng(kdim + vdim)
    args = _mha_arguments(rng, 4, kdim, vdim, separate, add_bias_kv, with_bias)
    lead = () if unbatched else (2,)
    q = rng.standard_normal((3,) + lead + (4,))
    k = rng.standard_normal((5,) + lead + (kdim,))
    v = rng.standard_normal((5,) + lead + (vdim,))
    padding = rng.random(lead + (5,)) < 0.3
    padding[..., 0] = False
    for kw in (dict(), dict(attn_mask=rng.standard_normal((3, 5)), key_padding_mask=padding,
                            average_attn_weights=False),
               dict(need_weights=False, attn_mask=rng.random((3, 5)) < 0.2)):
        tkw = {a: torch.from_numpy(b) if isinstance(b, np.ndarray) else b
               for a, b in {**args, **kw}.items()}
        theirs = TF.multi_head_attention_forward(*map(torch.from_numpy, (q, k, v)), **tkw)
        state = fastnn_random.get_state()
        ours = F.multi_head_attention_forward(q, k, v, **args, **kw)
        assert fastnn_random.get_state() == state   # (no draw without dropout)
        np.testing.assert_allclose(ours[0], theirs[0].numpy(), rtol=1e-10, atol=1e-12)
        assert (ours[1] is None) == (theirs[1] is None)
        if ours[1] is not None:
            np.testing.assert_allclose(ours[1], theirs[1].numpy(), rtol=1e-10, atol=1e-12)


def test_multi_head_attention_forward_errors_as_torch():
    rng = np.random.default_rng(0)
    args = _mha_arguments(rng, 4, 4, 4, False, False, True)
    q = rng.standard_normal((3, 2, 4))
    for change, error in ((dict(embed_dim_to_check=5), AssertionError),
                          (dict(num_heads=3), AssertionError),
                          (dict(in_proj_weight=None), AssertionError),
                          (dict(bias_k=np.zeros((1, 1, 4))), AssertionError),
                          (dict(use_separate_proj_weight=True), AssertionError),
                          (dict(in_proj_weight=np.zeros((12, 3))), RuntimeError),
                          (dict(out_proj_weight=np.zeros((4, 3))), RuntimeError)):
        tkw = {a: torch.from_numpy(b) if isinstance(b, np.ndarray) else b
               for a, b in {**args, **change}.items()}
        with pytest.raises(error):
            TF.multi_head_attention_forward(*(torch.from_numpy(q),) * 3, **tkw)
        with pytest.raises(error):
            F.multi_head_attention_forward(q, q, q, **{**args, **change})


@pytest.mark.parametrize("shape, groups", [((2, 2), 3), ((3, 1, 1), 2), ((1, 3), 2)])
def test_group_norm_checks_the_values_per_group_first(shape, groups):
    """F.group_norm: one value per group over the batch is PyTorch's ValueError even
    when num_groups does not divide the channels (its RuntimeError comes second)."""
    x = np.ones(shape)
    with pytest.raises(ValueError):
        TF.group_norm(torch.tensor(x), groups)
    with pytest.raises(ValueError, match="more than 1 value"):
        F.group_norm(x, groups)


@pytest.mark.parametrize("normalized_shape, shape", [(0, (3, 0)), ((2, 0), (3, 2, 0)),
                                                     (0, (0,)), ((0, 2), (4, 0, 2))])
@pytest.mark.parametrize("kind", ["LayerNorm", "RMSNorm"])
def test_norm_layers_over_no_features_as_torch(backend, kind, normalized_shape, shape):
    """PyTorch's LayerNorm(0) and RMSNorm(0) build (empty parameters) and map an empty
    input to an empty output; fastnn refused them. F.rms_norm no longer warns there."""
    import warnings
    from fastnn import nn
    for affine in (True, False):
        theirs = getattr(torch.nn, kind)(normalized_shape, elementwise_affine=affine)
        ours = getattr(nn, kind)(normalized_shape, elementwise_affine=affine)
        assert list(ours.state_dict()) == list(theirs.state_dict())
        ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
        tx = torch.ones(shape, requires_grad=True)
        expected = theirs(tx)
        expected.sum().backward()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out = ours(np.ones(shape, np.float32))
            grad = ours.backward(np.ones(shape, np.float32))
            functional = (F.layer_norm if kind == "LayerNorm" else F.rms_norm)(
                np.ones(shape), normalized_shape)
        assert out.shape == grad.shape == functional.shape == tuple(expected.shape)
        assert out.dtype == grad.dtype == np.float32
        for p, tp in zip(ours.parameters(), theirs.parameters()):
            assert p.grad.shape == tuple(tp.grad.shape)


@pytest.mark.parametrize("tracked, tracked_later, dropped", [
    (False, True, False), (False, True, True), (True, False, False), (True, True, True)])
def test_instance_norm_running_statistics_set_after_construction(backend, tracked,
                                                                 tracked_later, dropped):
    """As PyTorch's: the running statistics are used or moved whenever the layer has
    them (track_running_stats switched off later: input statistics, buffers still
    moved, in eval mode too); set to None, training runs without them and eval mode
    with track_running_stats is a RuntimeError (fastnn failed with a TypeError or
    AttributeError after computing)."""
    from fastnn import nn
    x = np.random.default_rng(2).standard_normal((2, 3, 4))
    for training in (True, False):
        theirs = torch.nn.InstanceNorm1d(3, track_running_stats=tracked).double()
        ours = nn.InstanceNorm1d(3, track_running_stats=tracked, dtype=np.float64)
        if tracked:
            ours.running_mean[...] = theirs.running_mean.numpy() + 0.5
            with torch.no_grad():
                theirs.running_mean += 0.5
        theirs.track_running_stats = ours.track_running_stats = tracked_later
        if dropped:
            theirs.running_mean = theirs.running_var = None
            ours.running_mean = ours.running_var = None
        theirs.train(training)
        ours.train(training)
        try:
            expected = theirs(torch.from_numpy(x)).numpy()
        except RuntimeError:
            with pytest.raises(RuntimeError, match="running_mean and running_var"):
                ours(x)
            continue
        np.testing.assert_allclose(ours(x), expected, rtol=1e-10, atol=1e-12)
        if theirs.running_mean is not None:
            np.testing.assert_allclose(ours.running_mean, theirs.running_mean.numpy(),
                                       rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(ours.running_var, theirs.running_var.numpy(),
                                       rtol=1e-12, atol=1e-12)


def test_attention_dropout_above_one_is_a_runtime_error():
    x = np.ones((2, 3, 4))
    theirs, ours = _both(x, x, x, dropout_p=1.5)
    assert theirs is RuntimeError and issubclass(ours, RuntimeError) \
        and issubclass(ours, ValueError)


def test_instance_norm_running_variance_far_below_eps(backend):
    """The running variance came from 1 / invstd^2 - eps in float32, which loses a
    variance much smaller than eps (0.5% off for variance 1e-6 and eps 0.1); it is the
    input's own unbiased variance now, as PyTorch's."""
    from fastnn import nn
    x = (np.random.default_rng(3).standard_normal((4, 3, 64)) * 1e-3 + 5).astype(np.float32)
    ours = nn.InstanceNorm1d(3, eps=0.1, momentum=1.0, track_running_stats=True)
    theirs = torch.nn.InstanceNorm1d(3, eps=0.1, momentum=1.0,
                                     track_running_stats=True).double()
    ours(x)
    theirs(torch.from_numpy(x.astype(np.float64)))
    np.testing.assert_allclose(ours.running_var, theirs.running_var.numpy(), rtol=1e-5)
    np.testing.assert_allclose(ours.running_mean, theirs.running_mean.numpy(), rtol=1e-6)


def test_local_response_norm_with_k_zero_warns_nothing():
    """k = 0 over zero inputs: a zero scale, PyTorch's NaN (0 * inf) in the output and
    gradient, without NumPy's divide-by-zero RuntimeWarning (forward and backward)."""
    import warnings
    from fastnn import nn
    x = np.zeros((2, 3, 4))
    x[0, 1, 2], x[1, :, 0] = 1.0, -2.0
    g = np.random.default_rng(4).standard_normal(x.shape)
    theirs = torch.nn.LocalResponseNorm(2, k=0.0)
    tx = torch.tensor(x, requires_grad=True)
    expected = theirs(tx)
    expected.backward(torch.tensor(g))
    layer = nn.LocalResponseNorm(2, k=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, grad = layer(x), None
        grad = layer.backward(g)
        functional = F.local_response_norm(x, 2, k=0.0)
    for ours, ref in ((out, expected.detach().numpy()), (functional, expected.detach().numpy()),
                      (grad, tx.grad.numpy())):
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
        kept = np.isfinite(ref)
        np.testing.assert_allclose(ours[kept], ref[kept], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind", ["LayerNorm", "RMSNorm", "GroupNorm"])
def test_norms_with_eps_zero_over_constant_rows_warn_nothing(backend, kind):
    """eps = 0 over a constant (or zero) row: PyTorch's NaN (1 / sqrt(0) times 0), in
    the output and gradients, without NumPy's divide or invalid RuntimeWarning (the
    numpy backend's layer_norm kernels and RMSNorm, every backend)."""
    import warnings
    from fastnn import nn
    x = np.zeros((2, 4, 3))
    x[0, 0] = [1.0, 2.0, 3.0]
    g = np.random.default_rng(5).standard_normal(x.shape)
    args = (4, 4) if kind == "GroupNorm" else (3,)
    theirs = getattr(torch.nn, kind)(*args, eps=0.0).double()
    ours = getattr(nn, kind)(*args, eps=0.0, dtype=np.float64)
    tx = torch.tensor(x, requires_grad=True)
    expected = theirs(tx)
    expected.backward(torch.tensor(g))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = ours(x)
        grad = ours.backward(g)
        functional = {"LayerNorm": lambda: F.layer_norm(x, (3,), eps=0.0),
                      "RMSNorm": lambda: F.rms_norm(x, (3,), eps=0.0),
                      "GroupNorm": lambda: F.group_norm(x, 4, eps=0.0)}[kind]()
    pairs = [(out, expected), (functional, expected), (grad, tx.grad)]
    pairs += [(p.grad, tp.grad) for p, tp in zip(ours.parameters(), theirs.parameters())]
    for a, b in pairs:
        b = b.detach().numpy()
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        np.testing.assert_allclose(np.nan_to_num(a), np.nan_to_num(b), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("buffered", [False, True])
def test_instance_norm_eps_zero_constant_instance_as_torch(backend, affine, buffered):
    """eps = 0: PyTorch's instance norm (its batch norm) takes 1 / sqrt(var + eps) as 0
    for a constant instance, whose output is then the bias and input gradient 0; the
    layer_norm kernels' inf gave NaN there (and in the weight gradient)."""
    from fastnn import nn
    theirs = torch.nn.InstanceNorm1d(2, eps=0.0, affine=affine).double()
    with torch.no_grad():
        for p in theirs.parameters():
            p.normal_(generator=torch.Generator().manual_seed(0))
    ours = nn.InstanceNorm1d(2, eps=0.0, affine=affine, dtype=np.float64)
    ours.load_state_dict({k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()})
    x = np.zeros((2, 2, 3))
    x[0, 0], x[1, 1] = [1.0, 2.0, 3.0], 5.0
    g = np.random.default_rng(6).standard_normal(x.shape)
    tx = torch.tensor(x, requires_grad=True)
    expected = theirs(tx)
    expected.backward(torch.tensor(g))
    run = nn.Sequential(ours) if buffered else ours
    np.testing.assert_allclose(run(x), expected.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(run.backward(g), tx.grad.numpy(), rtol=1e-12, atol=1e-12)
    for p, tp in zip(ours.parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-12, atol=1e-12)
