"""MultiheadAttention and the Transformer layers against torch 2.13 over randomized
configurations (outputs, attention weights, gradients of the inputs and of every
parameter, state dict keys, parameter names and shapes, float32/float64, every CPU
backend), and what a probe against torch found: fastnn.nn.functional activations,
activation kept as PyTorch keeps it (a name or function is no child module),
activation_relu_or_gelu and the nested-tensor attributes, relu in copied decoder layers
whose activation is a Module (PyTorch's __setstate__), error types that are also
PyTorch's, custom_encoder tested against None."""
import copy
import warnings

import numpy as np
import pytest

import fastnn
import fastnn.nn.functional as F
from fastnn import nn

torch = pytest.importorskip("torch")

torch.set_num_threads(2)
TORCH = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}
TOL = {np.dtype(np.float32): 3e-4, np.dtype(np.float64): 1e-9}


def close(ours, theirs, dtype, what):
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else theirs
    assert ours.shape == theirs.shape, what
    assert ours.dtype == theirs.dtype, what
    err = np.max(np.abs(ours - theirs) / (1 + np.abs(theirs)), initial=0.0)
    assert err < TOL[dtype], f"{what}: {err}"


def load(ours, theirs, dtype):
    """Random torch parameters (so that every bias shows), copied into ours."""
    theirs.to(TORCH[dtype])
    with torch.no_grad():
        for p in theirs.parameters():
            p.normal_(0.0, 0.5)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    names = dict(theirs.named_parameters())
    assert [(n, p.data.shape) for n, p in ours.named_parameters()] == [
        (n, tuple(p.shape)) for n, p in names.items()]
    ours.load_state_dict({k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()})
    return names


def compare(ours, theirs, inputs, kwargs, dtype, backend, eval_mode=False):
    """Forward both, backward a random gradient; outputs and every gradient agree."""
    names = dict(theirs.named_parameters())
    if eval_mode:
        ours.eval()
        theirs.eval()
    tin = [torch.from_numpy(x.copy()).requires_grad_() for x in inputs]
    tkw = {k: torch.from_numpy(v.copy()) if isinstance(v, np.ndarray) else v
           for k, v in kwargs.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tout = theirs(*tin, **tkw)
    with fastnn.use_backend(backend):
        out = ours(*inputs, **kwargs)
        if isinstance(tout, tuple):   # attention: (output, weights)
            tout, tweights = tout
            out, weights = out
            assert (weights is None) == (tweights is None)
            if weights is not None:
                close(weights, tweights, dtype, "weights")
        close(out, tout, dtype, "output")
        g = np.random.default_rng(7).standard_normal(out.shape).astype(dtype)
        tout.backward(torch.from_numpy(g))
        grads = ours.backward(g)
    grads = grads if isinstance(grads, tuple) else (grads,)
    for i, (ours_g, t) in enumerate(zip(grads, tin)):
        close(ours_g, t.grad, dtype, f"grad of input {i}")
    params = dict(ours.named_parameters())
    for name, p in names.items():
        close(params[name].grad, p.grad, dtype, f"grad of {name}")


def mha_case(seed):
    r = np.random.default_rng(seed)
    dtype = np.dtype([np.float32, np.float64][seed % 2])
    heads = int(r.choice([1, 2, 3]))
    e = heads * int(r.choice([2, 4]))
    opts = dict(bias=bool(r.random() < 0.7), add_bias_kv=bool(r.random() < 0.3),
                add_zero_attn=bool(r.random() < 0.3), batch_first=bool(r.random() < 0.5),
                kdim=int(r.choice([e, 3])) if r.random() < 0.4 else None,
                vdim=int(r.choice([e, 5])) if r.random() < 0.4 else None)
    unbatched = r.random() < 0.25
    n, length, source = (int(v) for v in r.integers(1, 4, 3))
    causal = r.random() < 0.25
    source = length if causal else source

    def seq(size, features):
        if unbatched:
            return r.standard_normal((size, features)).astype(dtype)
        shape = (n, size, features) if opts["batch_first"] else (size, n, features)
        return r.standard_normal(shape).astype(dtype)
    inputs = (seq(length, e), seq(source, opts["kdim"] or e), seq(source, opts["vdim"] or e))
    kw = dict(need_weights=bool(r.random() < 0.5), average_attn_weights=bool(r.random() < 0.5))
    kind = r.choice(["none", "bool", "float", "3d"])
    if causal:
        kw["attn_mask"] = np.triu(np.full((length, source), -np.inf, dtype), 1)
        kw["is_causal"] = True
    elif kind == "bool":
        kw["attn_mask"] = r.random((length, source)) < 0.3
        kw["attn_mask"][:, 0] = False
    elif kind == "float":
        kw["attn_mask"] = r.standard_normal((length, source)).astype(dtype)
    elif kind == "3d":
        kw["attn_mask"] = r.standard_normal(((1 if unbatched else n) * heads, length,
                                             source)).astype(dtype)
    padding = r.choice(["none", "bool", "float"])
    shape = (source,) if unbatched else (n, source)
    if padding == "bool":
        kw["key_padding_mask"] = r.random(shape) < 0.3
        kw["key_padding_mask"][..., 0] = False
    elif padding == "float":
        kw["key_padding_mask"] = r.standard_normal(shape).astype(dtype)
    return dtype, e, heads, opts, inputs, kw


@pytest.mark.parametrize("seed", range(16))
def test_multihead_attention_random_configs_match_torch(seed):
    dtype, e, heads, opts, inputs, kw = mha_case(seed)
    theirs = torch.nn.MultiheadAttention(e, heads, **opts)
    ours = nn.MultiheadAttention(e, heads, dtype=dtype, **opts)
    load(ours, theirs, dtype)
    compare(ours, theirs, inputs, kw, dtype, fastnn.backends()[seed % len(fastnn.backends())])


ACTIVATIONS = {"relu": ("relu", "relu"), "gelu": ("gelu", "gelu"),
               "F.gelu": (F.gelu, torch.nn.functional.gelu),
               "F.silu": (F.silu, torch.nn.functional.silu),
               "F.relu": (F.relu, torch.nn.functional.relu),
               "SiLU": (nn.SiLU(), torch.nn.SiLU())}


def stack_case(seed):
    r = np.random.default_rng(100 + seed)
    dtype = np.dtype([np.float64, np.float32][seed % 2])
    kind = ["encoder", "decoder", "transformer", "encoder-layer"][seed % 4]
    heads = int(r.choice([1, 2]))
    d = 4 * heads
    ours_act, theirs_act = ACTIVATIONS[list(ACTIVATIONS)[seed % len(ACTIVATIONS)]]
    eps = float(r.choice([1e-5, 0.1]))
    layer = dict(dim_feedforward=int(r.choice([3, 12])), dropout=0.0, layer_norm_eps=eps,
                 batch_first=bool(r.random() < 0.5), norm_first=bool(r.random() < 0.5),
                 bias=bool(r.random() < 0.75))
    layers = int(r.integers(1, 3))
    final = r.random() < 0.5

    def norms():
        return (nn.LayerNorm(d, eps=eps, dtype=dtype) if final else None,
                torch.nn.LayerNorm(d, eps=eps) if final else None)
    if kind in ("encoder", "encoder-layer"):
        ours = nn.TransformerEncoderLayer(d, heads, activation=ours_act, dtype=dtype, **layer)
        theirs = torch.nn.TransformerEncoderLayer(d, heads, activation=copy.deepcopy(theirs_act),
                                                  **layer)
        if kind == "encoder":
            ours_norm, theirs_norm = norms()
            ours = nn.TransformerEncoder(ours, layers, ours_norm, enable_nested_tensor=False)
            theirs = torch.nn.TransformerEncoder(theirs, layers, theirs_norm,
                                                 enable_nested_tensor=False)
    elif kind == "decoder":
        ours_norm, theirs_norm = norms()
        ours = nn.TransformerDecoder(nn.TransformerDecoderLayer(
            d, heads, activation=ours_act, dtype=dtype, **layer), layers, ours_norm)
        theirs = torch.nn.TransformerDecoder(torch.nn.TransformerDecoderLayer(
            d, heads, activation=copy.deepcopy(theirs_act), **layer), layers, theirs_norm)
    else:
        ours = nn.Transformer(d, heads, layers, 1, activation=ours_act, dtype=dtype, **layer)
        theirs = torch.nn.Transformer(d, heads, layers, 1, activation=theirs_act, **layer)
    unbatched = r.random() < 0.2
    n, s, t = (int(v) for v in r.integers(1, 4, 3))

    def seq(size):
        shape = ((size, d) if unbatched else
                 (n, size, d) if layer["batch_first"] else (size, n, d))
        return r.standard_normal(shape).astype(dtype)

    def padding(size):
        m = r.random((size,) if unbatched else (n, size)) < 0.3
        m[..., 0] = False
        return m
    src, tgt = seq(s), seq(t)
    causal = nn.Transformer.generate_square_subsequent_mask(t, dtype=dtype)
    if kind == "encoder":
        inputs, kw = (src,), dict(mask=causal if s == t else None,
                                  src_key_padding_mask=padding(s))
    elif kind == "encoder-layer":
        inputs, kw = (src,), dict(src_mask=r.standard_normal((s, s)).astype(dtype))
    elif kind == "decoder":
        inputs, kw = (tgt, src), dict(tgt_mask=causal, memory_key_padding_mask=padding(s))
    else:
        inputs, kw = (src, tgt), dict(tgt_mask=causal, src_key_padding_mask=padding(s),
                                      memory_mask=r.random((t, s)) < 0.2, tgt_is_causal=True)
        kw["memory_mask"][:, 0] = False
    return dtype, ours, theirs, inputs, kw


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("seed", range(10))
def test_transformer_stacks_random_configs_match_torch(seed):
    dtype, ours, theirs, inputs, kw = stack_case(seed)
    load(ours, theirs, dtype)
    compare(ours, theirs, inputs, kw, dtype, fastnn.backends()[seed % len(fastnn.backends())],
            eval_mode=seed % 3 == 0)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_functional_activations_and_the_activation_attribute_as_torch():
    """F.relu / F.gelu / ... are accepted (torch takes any callable); a name or function
    is no child module (the repr and modules() equal torch's), a Module is one;
    activation_relu_or_gelu as torch's; a plain callable without a layer is refused."""
    for ours_act, theirs_act in [("relu", "relu"), ("gelu", "gelu"),
                                 (F.gelu, torch.nn.functional.gelu),
                                 (F.relu, torch.nn.functional.relu),
                                 (F.tanh, torch.tanh), (nn.SiLU(), torch.nn.SiLU()),
                                 (nn.ReLU(), torch.nn.ReLU())]:
        for kind in ("TransformerEncoderLayer", "TransformerDecoderLayer"):
            ours = getattr(nn, kind)(8, 2, 16, activation=ours_act)
            theirs = getattr(torch.nn, kind)(8, 2, 16, activation=theirs_act)
            assert repr(ours) == repr(theirs)
            assert [n for n, _ in ours.named_modules()] == [
                n for n, _ in theirs.named_modules()]
            if kind == "TransformerEncoderLayer":
                assert ours.activation_relu_or_gelu == theirs.activation_relu_or_gelu
        model = nn.Transformer(8, 2, 1, 1, 16, activation=ours_act)
        assert repr(model) == repr(torch.nn.Transformer(8, 2, 1, 1, 16, activation=theirs_act))
    assert isinstance(nn.TransformerEncoderLayer(8, 2, activation=F.silu).activation, nn.SiLU)
    with pytest.raises(TypeError, match="plain callable"):
        nn.TransformerEncoderLayer(8, 2, activation=lambda x: x)
    layer = nn.TransformerEncoderLayer(8, 2, 16, 0.0)   # a copy keeps its activation
    x = np.random.default_rng(0).standard_normal((3, 2, 8)).astype(np.float32)
    np.testing.assert_array_equal(copy.deepcopy(layer)(x), layer(x))


def test_copied_decoder_layers_with_a_module_activation_compute_relu_as_torch():
    """torch's TransformerDecoderLayer.__setstate__ turns a Module activation into relu
    in every copy (TransformerDecoder's clones, deepcopy), its repr unchanged."""
    rng = np.random.default_rng(3)
    tgt, memory = rng.standard_normal((3, 2, 8)), rng.standard_normal((4, 2, 8))
    theirs = torch.nn.TransformerDecoder(
        torch.nn.TransformerDecoderLayer(8, 2, 16, 0.0, activation=torch.nn.SiLU()), 2)
    ours = nn.TransformerDecoder(
        nn.TransformerDecoderLayer(8, 2, 16, 0.0, activation=nn.SiLU(), dtype=np.float64), 2)
    load(ours, theirs, np.dtype(np.float64))
    assert repr(ours) == repr(theirs)
    compare(ours, theirs, (tgt, memory), {}, np.dtype(np.float64), "numpy")
    single = nn.TransformerDecoderLayer(8, 2, 16, 0.0, activation=nn.SiLU(), dtype=np.float64)
    assert isinstance(single.activation, nn.SiLU)
    assert isinstance(copy.deepcopy(single).activation, nn.ReLU)
    encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, activation=nn.SiLU()), 2)
    assert isinstance(encoder.layers[1].activation, nn.SiLU)   # torch's encoder keeps it


def test_nested_tensor_attributes_as_torch():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for kwargs in (dict(), dict(batch_first=True), dict(batch_first=True, norm_first=True),
                       dict(batch_first=True, activation="gelu"),
                       dict(batch_first=True, bias=False)):
            for heads, enable in ((1, True), (2, True), (2, False)):
                ours = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, heads, 16, **kwargs),
                                             1, enable_nested_tensor=enable, mask_check=False)
                theirs = torch.nn.TransformerEncoder(
                    torch.nn.TransformerEncoderLayer(8, heads, 16, **kwargs), 1,
                    enable_nested_tensor=enable, mask_check=False)
                for name in ("enable_nested_tensor", "use_nested_tensor", "mask_check"):
                    assert getattr(ours, name) == getattr(theirs, name), (kwargs, heads, name)


def test_errors_carry_torch_types():
    """Still ValueError / TypeError, and also torch's AssertionError / RuntimeError, with
    torch's words where a test may match them."""
    with pytest.raises(AssertionError, match="embed_dim must be divisible by num_heads"):
        nn.MultiheadAttention(6, 4)
    with pytest.raises(ValueError, match=r"embed_dim \(6\) must be divisible by num_heads"):
        nn.TransformerEncoderLayer(6, 4)
    attn = nn.MultiheadAttention(8, 2)
    z = lambda *shape: np.zeros(shape, np.float32)   # noqa: E731
    for args, kw, kind in [
            ((z(3, 2, 6), z(3, 2, 8), z(3, 2, 8)), {}, AssertionError),
            ((z(1, 3, 2, 8), z(1, 3, 2, 8), z(1, 3, 2, 8)), {}, AssertionError),
            ((z(3, 8), z(4, 2, 8), z(4, 2, 8)), {}, AssertionError),
            ((z(3, 2, 8), z(4, 2, 8), z(5, 2, 8)), {}, AssertionError),
            ((z(3, 2, 8), z(4, 2, 8), z(4, 2, 8)), dict(key_padding_mask=z(2, 3)),
             AssertionError),
            ((z(3, 2, 8), z(4, 2, 8), z(4, 2, 8)), dict(attn_mask=z(3, 3)), RuntimeError),
            ((z(3, 2, 8), z(4, 2, 8), z(4, 2, 8)), dict(attn_mask=z(4)), AssertionError),
            ((z(3, 2, 8), z(3, 2, 8), z(3, 2, 8)), dict(is_causal=True), RuntimeError)]:
        with pytest.raises(ValueError):
            attn(*args, **kw)
        with pytest.raises(kind):
            attn(*args, **kw)
        with pytest.raises(kind), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.nn.MultiheadAttention(8, 2)(
                *(torch.from_numpy(a) for a in args),
                **{k: v if isinstance(v, bool) else torch.from_numpy(v) for k, v in kw.items()})
    with pytest.raises(TypeError) as info:
        attn(z(3, 2, 8), z(3, 2, 8), z(3, 2, 8), attn_mask=np.zeros((3, 3), np.int64))
    assert isinstance(info.value, AssertionError)
    with pytest.raises(RuntimeError, match="activation should be relu/gelu, not tanh"):
        nn.TransformerEncoderLayer(8, 2, activation="tanh")
    model = nn.Transformer(8, 2, 1, 1, 16)
    for tgt, words in ((z(4, 3, 8), "one batch size"), (z(4, 2, 6), "d_model = 8")):
        with pytest.raises(RuntimeError, match=words) as info:
            model(z(3, 2, 8), tgt)
        assert isinstance(info.value, ValueError)


def test_custom_encoder_and_decoder_are_used_when_given():
    encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16), 0, nn.LayerNorm(8))
    decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(8, 2, 16), 1)
    model = nn.Transformer(8, 2, custom_encoder=encoder, custom_decoder=decoder)
    assert model.encoder is encoder and model.decoder is decoder
    theirs = torch.nn.Transformer(
        8, 2, custom_encoder=torch.nn.TransformerEncoder(
            torch.nn.TransformerEncoderLayer(8, 2, 16), 0, torch.nn.LayerNorm(8),
            enable_nested_tensor=False),
        custom_decoder=torch.nn.TransformerDecoder(torch.nn.TransformerDecoderLayer(8, 2, 16), 1))
    assert list(model.state_dict()) == list(theirs.state_dict())
