"""PyTorch's reset_parameters / reset_running_stats: the constructor's draws again, in
place (Linear, the convolutions, Embedding), ones and zeros for the norm layers, and
zeroed running statistics and batch count."""
import inspect

import numpy as np
import pytest

import fastnn
from fastnn import nn
from fastnn.errors import DtypeError

DRAWN = [lambda: nn.Linear(5, 3), lambda: nn.Linear(5, 3, bias=False),
         lambda: nn.Conv1d(2, 4, 3), lambda: nn.Conv2d(2, 4, 3, groups=2),
         lambda: nn.Conv3d(2, 4, 2), lambda: nn.ConvTranspose1d(2, 4, 3),
         lambda: nn.ConvTranspose2d(2, 4, 3), lambda: nn.ConvTranspose3d(2, 4, 2),
         lambda: nn.Embedding(6, 3, padding_idx=2),
         # (these had no reset_parameters: the re-initialise idiom skipped them)
         lambda: nn.Bilinear(3, 4, 2), lambda: nn.EmbeddingBag(6, 3, padding_idx=1),
         lambda: nn.RNN(3, 4, num_layers=2), lambda: nn.LSTM(3, 4, proj_size=2),
         lambda: nn.GRU(3, 4, bidirectional=True), lambda: nn.RNNCell(3, 4),
         lambda: nn.LSTMCell(3, 4), lambda: nn.GRUCell(3, 4, bias=False),
         lambda: nn.AdaptiveLogSoftmaxWithLoss(8, 10, [4, 7])]


@pytest.mark.parametrize("make", DRAWN, ids=lambda f: None)
def test_reset_parameters_draws_what_the_constructor_draws(make):
    fastnn.manual_seed(11)
    layer = make()
    fresh = [p.data.copy() for p in layer.parameters()]
    arrays = [p.data for p in layer.parameters()]
    for p in layer.parameters():
        p.data[...] = 7
    fastnn.manual_seed(11)
    layer.reset_parameters()
    for before, array, p in zip(fresh, arrays, layer.parameters()):
        assert p.data is array                          # in place, as PyTorch's
        np.testing.assert_array_equal(p.data, before)


def test_the_reinitialise_idiom_changes_every_drawn_parameter():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.BatchNorm1d(3), nn.Linear(3, 2))
    before = [p.data.copy() for p in model.parameters()]
    for p in model.parameters():
        p.data[...] = 0.5
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    after = [p.data for p in model.parameters()]
    assert not np.array_equal(after[0], before[0]) and not np.array_equal(after[0], 0.5)
    np.testing.assert_array_equal(after[2], np.ones(3))     # BatchNorm's weight
    np.testing.assert_array_equal(after[3], np.zeros(3))    # and bias


@pytest.mark.parametrize("make", [
    lambda: nn.BatchNorm1d(4), lambda: nn.BatchNorm1d(4, momentum=None),
    lambda: nn.InstanceNorm1d(4, affine=True, track_running_stats=True)])
def test_reset_running_stats_and_parameters_of_the_norm_layers(make):
    layer = make()
    x = np.random.default_rng(0).standard_normal((6, 4, 5)).astype(np.float32)
    layer.forward(x)
    layer.weight.data[...] = 3
    assert not np.array_equal(layer.running_mean, np.zeros(4))
    layer.num_batches_tracked = 3     # (instance norm's never moves, as PyTorch's)
    layer.reset_running_stats()
    np.testing.assert_array_equal(layer.running_mean, np.zeros(4))
    np.testing.assert_array_equal(layer.running_var, np.ones(4))
    assert layer.num_batches_tracked == 0
    np.testing.assert_array_equal(layer.weight.data, 3)      # parameters untouched
    layer.reset_parameters()
    np.testing.assert_array_equal(layer.weight.data, np.ones(4))
    np.testing.assert_array_equal(layer.bias.data, np.zeros(4))


@pytest.mark.parametrize("layer", [nn.LayerNorm(4), nn.GroupNorm(2, 4),
                                   nn.BatchNorm1d(4, track_running_stats=False)])
def test_reset_parameters_of_affine_norms(layer):
    for p in layer.parameters():
        p.data[...] = 5
    layer.reset_parameters()
    assert [p.data.tolist() for p in layer.parameters()] == [[1.0] * 4, [0.0] * 4]


def test_constant_parameters_and_attention_reset_as_torch():
    prelu, rms = nn.PReLU(3, init=0.1), nn.RMSNorm(4)
    for layer in (prelu, rms):
        layer.weight.data[...] = 7
        layer.reset_parameters()
    np.testing.assert_array_equal(prelu.weight.data, np.full(3, 0.1, np.float32))
    np.testing.assert_array_equal(rms.weight.data, np.ones(4, np.float32))
    mha = nn.MultiheadAttention(8, 2, add_bias_kv=True)
    for p in mha.parameters():
        p.data[...] = 7
    mha._reset_parameters()
    bound = np.sqrt(6 / (8 + 24))   # xavier_uniform over (3 E, E)
    assert np.abs(mha.in_proj_weight.data).max() <= bound
    assert not mha.in_proj_bias.data.any() and not mha.out_proj.bias.data.any()
    assert (mha.bias_k.data != 7).all() and (mha.out_proj.weight.data == 7).all()  # torch's
    model = nn.Transformer(8, 2, 1, 1, 16)
    for p in model.parameters():
        p.data[...] = 7
    model._reset_parameters()
    for p in model.parameters():
        assert (p.data != 7).all() if p.data.ndim > 1 else (p.data == 7).all()


def test_pytorch_factory_keywords_and_positional_conv_arguments():
    # dtype=None is the default dtype (was NumPy's float64), device= moves the layer
    assert nn.Linear(3, 4, dtype=None, device=None).weight.dtype == np.float32
    assert nn.LSTM(3, 4, dtype=None, device="cpu").weight_ih_l0.dtype == np.float32
    lazy = nn.LazyLinear(4, dtype=None)
    assert lazy(np.ones((2, 5), np.float32)).dtype == np.float32
    # Conv1d/Conv2d take PyTorch's positional order: ..., padding, dilation, groups, bias
    conv = nn.Conv2d(4, 8, 3, 1, 0, 2, 4, False)
    assert conv.dilation == (2, 2) and conv.groups == 4 and conv.bias is None
    assert conv.weight.shape == (8, 1, 3, 3)
    assert nn.Conv1d(4, 8, 3, 1, 0, 1, 2).weight.shape == (8, 2, 3)


def test_signatures_show_the_device_keyword_beside_dtype():
    # every layer with a dtype takes device= (by keyword); help() and inspect.signature
    # showed the dtype only, so code that looks for PyTorch's factory keywords there
    # did not find device
    shown = 0
    for name in nn.__all__:
        cls = getattr(nn, name)
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            continue
        params = inspect.signature(cls).parameters
        if "dtype" in params:
            assert params["device"].default is None, name
            assert params["device"].kind in (inspect.Parameter.KEYWORD_ONLY,
                                              inspect.Parameter.POSITIONAL_OR_KEYWORD), name
            shown += 1
    assert shown > 40
    assert list(inspect.signature(nn.Linear).parameters) == [
        "in_features", "out_features", "bias", "dtype", "device"]
    assert "device" not in inspect.signature(nn.ReLU).parameters   # (as PyTorch's)


def test_layers_take_pytorchs_float_dtypes():
    """Ported code's dtype=torch.float64 (by keyword or in the dtype's position) builds
    the layer in NumPy's float64, which fastnn.save records; a dtype fastnn has no
    parameters of is a DtypeError naming it (NumPy's 'Cannot interpret' before)."""
    torch = pytest.importorskip("torch")
    assert nn.Linear(3, 4, dtype=torch.float64).weight.dtype == np.float64
    assert nn.Linear(3, 4, True, torch.float64, device="cpu").bias.dtype == np.float64
    assert nn.Conv2d(1, 2, 3, dtype=torch.float).weight.dtype == np.float32
    bn = nn.BatchNorm1d(3, dtype=torch.double)
    assert bn.weight.dtype == bn.running_var.dtype == np.float64
    assert nn.LSTM(3, 4, dtype=torch.float64).weight_hh_l0.dtype == np.float64
    assert nn.Linear(3, 4, dtype=torch.float64)._init_args[2]["dtype"]["dtype"] == "float64"
    for dtype in (torch.int64, torch.float16):
        with pytest.raises(DtypeError, match=f"Linear: .*got {dtype}"):
            nn.Linear(3, 4, dtype=dtype)


def test_kaiming_takes_the_mode_in_any_case_as_torch():
    w = np.zeros((64, 32), np.float32)
    nn.init.kaiming_uniform_(w, mode="FAN_OUT")
    assert 0 < np.abs(w).max() <= np.sqrt(6 / 64) * 1.0001


def test_batchnorm_sgd_and_conv_take_the_design_contracts_positional_order():
    # DESIGN.md: BatchNorm1d(num_features, eps, momentum, mean_only), SGD(params, lr,
    # momentum, weight_decay), Conv2d(in, out, k, stride, padding, bias); PyTorch's other
    # orders by keyword (Conv2d's sixth positional is PyTorch's dilation when an int)
    bn = nn.BatchNorm1d(4, 1e-5, 0.1, True)
    assert bn.mean_only
    assert nn.BatchNorm1d(4, affine=False).weight is None
    opt = fastnn.optim.SGD([nn.Parameter(np.ones(2))], 0.1, 0.9, 0.5)
    assert opt.defaults["weight_decay"] == 0.5 and opt.defaults["dampening"] == 0
    conv = nn.Conv2d(3, 8, 3, 1, 1, False)
    assert conv.bias is None and conv.dilation == (1, 1)


def test_lazy_layers_take_the_factory_keywords_and_bias():
    layer = nn.LazyConv2d(8, 3, dtype=None, device=None)
    assert layer(np.zeros((1, 2, 5, 5), np.float32)).dtype == np.float32
    nn.LazyConvTranspose2d(3, 2, device="cpu")
    norm = nn.LazyBatchNorm1d(bias=False)
    norm(np.ones((4, 3), np.float32))
    assert norm.bias is None and norm.weight.shape == (3,)


def test_a_size_given_as_an_array_is_saved_so_the_model_rebuilds(tmp_path):
    model = nn.Sequential(nn.LayerNorm(np.array([5])), nn.Conv1d(2, 2, np.array([3])))
    fastnn.save(model, tmp_path / "m.npz")
    rebuilt = fastnn.load(tmp_path / "m.npz")
    assert rebuilt[0].normalized_shape == (5,) and rebuilt[1].kernel_size == (3,)


def test_a_pytorch_style_scheduler_subclass_with_get_lr_runs():
    from fastnn.optim import lr_scheduler

    class Warmup(lr_scheduler.LRScheduler):
        def get_lr(self):
            return [base * min(1.0, (self.last_epoch + 1) / 4) for base in self.base_lrs]

    opt = fastnn.optim.SGD([nn.Parameter(np.ones(2))], lr=0.1)
    sched = Warmup(opt)
    rates = []
    for _ in range(5):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    np.testing.assert_allclose(rates, [0.025, 0.05, 0.075, 0.1, 0.1])


def test_mse_l1_losses_and_containers_take_pytorchs_argument_names_and_order():
    assert nn.MSELoss(None, None, "sum").reduction == "sum"
    assert nn.L1Loss(None, None, "none").reduction == "none"
    assert len(nn.ModuleList(modules=[nn.ReLU()])) == 1
    assert list(nn.ModuleDict(modules={"a": nn.ReLU()})) == ["a"]
    assert list(nn.ParameterDict(parameters={"w": nn.Parameter(np.ones(2))})) == ["w"]


def test_parameter_takes_pytorchs_tensor_methods():
    weight = nn.Linear(2, 3).weight
    assert weight.size == 6 and weight.size() == (3, 2) and weight.size(0) == 3
    assert weight.dim() == 2 and weight.nelement() == 6
    assert weight.detach() is weight.data and weight.clone() is not weight.data
    assert weight.copy_(np.ones((3, 2))).data.sum() == 6
    assert weight.zero_().data.sum() == 0 and weight.fill_(2.0).data.sum() == 12


def test_editing_param_groups_params_is_refused_not_ignored():
    # fastnn's flat buffers were built for the lists as they were: a step after an
    # append, a pop or a removed group would have updated the old parameters silently
    layer = nn.Linear(3, 2)
    for edit in ("append", "pop", "delete"):
        opt = fastnn.optim.SGD([{"params": [layer.weight]}, {"params": [layer.bias]}], lr=0.1)
        groups = opt.param_groups
        if edit == "append":
            groups[0]["params"].append(nn.Parameter(np.ones(2, np.float32)))
        elif edit == "pop":
            groups[1]["params"].pop()
        else:
            del groups[0]
        with pytest.raises(RuntimeError, match="add_param_group"):
            opt.step()
    opt = fastnn.optim.SGD([layer.weight], lr=0.1)
    opt.param_groups[0]["lr"] = 0.5   # hyper-parameters stay editable
    opt.step()


def test_a_pytorch_style_optimizer_subclass_keeps_its_state():
    class MomentumSGD(fastnn.optim.Optimizer):
        def __init__(self, params, lr=0.1, momentum=0.9):
            super().__init__(params, dict(lr=lr, momentum=momentum))

        def step(self, closure=None):
            for group in self.param_groups:
                for p in group["params"]:
                    state = self.state[p]
                    buf = state.get("buf")
                    buf = p.grad.copy() if buf is None else group["momentum"] * buf + p.grad
                    state["buf"] = buf
                    p.data -= group["lr"] * buf

    p = nn.Parameter(np.ones(3))
    opt = MomentumSGD([p])
    for _ in range(3):
        p.grad = np.full(3, 0.5)
        opt.step()
    np.testing.assert_allclose(p.data, 1 - 0.1 * 0.5 * (1 + 1.9 + 2.71))
    np.testing.assert_allclose(opt.state[p]["buf"], 0.5 * 2.71)


def test_a_module_cannot_take_a_parameters_place_as_in_torch():
    layer = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="as parameter 'weight'"):
        layer.weight = nn.ReLU()
    assert isinstance(layer.weight, nn.Parameter)


def test_a_subclass_skips_parameters_without_gradients_with_has_no_grad():
    class Decay(fastnn.optim.Optimizer):
        def __init__(self, params):
            super().__init__(params, dict(lr=0.1))

        def step(self, closure=None):
            for group in self.param_groups:
                for p in group["params"]:
                    if fastnn.optim.has_no_grad(p):   # PyTorch's `p.grad is None`
                        continue
                    p.data *= 0.9

    used, unused = nn.Linear(2, 1).double(), nn.Linear(2, 1).double()
    before = unused.weight.data.copy()
    opt = Decay(list(used.parameters()) + list(unused.parameters()))
    opt.zero_grad()
    used(np.ones((1, 2)))
    used.backward(np.ones((1, 1)))
    opt.step()
    np.testing.assert_array_equal(unused.weight.data, before)
