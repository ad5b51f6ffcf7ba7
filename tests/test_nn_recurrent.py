"""RNN, LSTM and GRU against torch.nn: outputs, final states, the gradients of the input,
of the initial state and of every parameter, through layers, directions and time."""
import numpy as np
import pytest
import torch

import fastnn
from fastnn import nn
from fastnn.nn.recurrent import RNNBase, RNNCellBase

from conftest import assert_close
from nn_torch_helpers import TORCH_DTYPES

torch.set_num_threads(2)
# torch's CPU LSTM with proj_size says it skips oneDNN: its reference path is what we test
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")

CONFIGS = [
    dict(),
    dict(num_layers=2, batch_first=True),
    dict(bidirectional=True, bias=False),
    dict(num_layers=2, bidirectional=True, batch_first=True),
]


def twins(name, dtype, **kwargs):
    ours = getattr(nn, name)(3, 4, dtype=dtype, **kwargs)
    theirs = getattr(torch.nn, name)(3, 4, **kwargs).to(TORCH_DTYPES[np.dtype(dtype)])
    ours.load_state_dict({k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def run_both(ours, theirs, x, hx, rng, dtype):
    """Forward both, backward with random output and final-state gradients; compare."""
    lstm = ours.mode == "LSTM"
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    thx = None if hx is None else tuple(torch.from_numpy(h.copy()).requires_grad_(True)
                                        for h in hx)
    if lstm:
        tout, (th, tc) = theirs(tx, thx)
        out, (h, c) = ours(x, hx)
        finals = [(h, th), (c, tc)]
    else:
        tout, th = theirs(tx, None if thx is None else thx[0])
        out, h = ours(x, None if hx is None else hx[0])
        finals = [(h, th)]
    go = rng.standard_normal(tuple(tout.shape)).astype(dtype)
    gfinal = [rng.standard_normal(tuple(t.shape)).astype(dtype) for _, t in finals]
    loss = (tout * torch.from_numpy(go)).sum()
    for g, (_, t) in zip(gfinal, finals):
        loss = loss + (t * torch.from_numpy(g)).sum()
    loss.backward()
    grad_x = ours.backward(go, tuple(gfinal) if lstm else gfinal[0])
    assert out.shape == tuple(tout.shape) and out.dtype == dtype
    assert_close(out, tout.detach().numpy(), dtype)
    for ours_state, t in finals:
        assert_close(ours_state, t.detach().numpy(), dtype)
    assert_close(grad_x, tx.grad.numpy(), dtype, scale=10)
    named = dict(theirs.named_parameters())
    assert [n for n, _ in ours.named_parameters()] == list(named)
    for name, p in ours.named_parameters():
        assert_close(p.grad, named[name].grad.numpy(), dtype, scale=30, err_msg=name)
    if thx is not None:
        grads = ours.grad_hx if lstm else (ours.grad_hx,)
        for g, t in zip(grads, thx):
            assert_close(g, t.grad.numpy(), dtype, scale=10)


@pytest.mark.parametrize("config", CONFIGS, ids=["1-layer", "2-layer-batch-first",
                                                 "bidirectional-no-bias", "2-layer-bi-bf"])
@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_recurrent_layers_match_torch(dtype, rng, name, config):
    ours, theirs = twins(name, dtype, **config)
    d = 2 if config.get("bidirectional") else 1
    layers = config.get("num_layers", 1)
    shape = (2, 5, 3) if config.get("batch_first") else (5, 2, 3)
    x = rng.standard_normal(shape).astype(dtype)
    hx = tuple(rng.standard_normal((d * layers, 2, 4)).astype(dtype) for _ in range(2))
    run_both(ours, theirs, x, hx, rng, dtype)
    ours.zero_grad()
    theirs.zero_grad()
    run_both(ours, theirs, x, None, rng, dtype)   # zero initial state


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_unbatched_sequence_and_relu_rnn(rng, name):
    dtype = np.float64
    kwargs = dict(nonlinearity="relu") if name == "RNN" else {}
    ours, theirs = twins(name, dtype, num_layers=2, **kwargs)
    x = rng.standard_normal((6, 3))
    run_both(ours, theirs, x, tuple(rng.standard_normal((2, 4)) for _ in range(2)), rng,
             dtype)
    assert repr(ours) == repr(theirs)


def test_dropout_between_layers(rng):
    """Training mode drops (and rescales) the outputs of every layer but the last, from
    fastnn's generator; eval mode matches torch's eval exactly."""
    ours, theirs = twins("LSTM", np.float64, num_layers=3, dropout=0.5)
    x = rng.standard_normal((4, 2, 3))
    fastnn.manual_seed(3)
    a, _ = ours(x)
    grad = ours.backward(np.ones_like(a))
    fastnn.manual_seed(3)
    b, _ = ours(x)
    np.testing.assert_array_equal(a, b)
    assert grad.shape == x.shape and np.isfinite(grad).all()
    ours.eval()
    theirs.eval()
    ours.zero_grad()
    run_both(ours, theirs, x, None, rng, np.float64)
    assert not np.allclose(a, ours(x)[0])


def test_lstm_training_follows_torch_and_learns_to_remember(rng):
    """An LSTM and a Linear head trained with Adam on sequences labelled by the sign of
    their first element (noise after it), from torch's initial weights (float64): the
    losses follow torch's step for step, and the model learns the task as torch's does."""
    torch.manual_seed(0)
    tlstm, thead = torch.nn.LSTM(1, 16, batch_first=True).double(), torch.nn.Linear(16, 2).double()
    lstm, head = (nn.LSTM(1, 16, batch_first=True, dtype=np.float64),
                  nn.Linear(16, 2, dtype=np.float64))
    for ours, theirs in ((lstm, tlstm), (head, thead)):
        ours.load_state_dict({k: v.detach().numpy().copy()
                              for k, v in theirs.state_dict().items()})
    opt = fastnn.optim.Adam(list(lstm.parameters()) + list(head.parameters()), lr=0.02)
    topt = torch.optim.Adam(list(tlstm.parameters()) + list(thead.parameters()), lr=0.02)
    loss_fn = nn.CrossEntropyLoss()
    # 100 steps: past them Adam at this rate is chaotic here, rounding differences (the
    # order of a sum) growing into different trajectories for any two implementations
    for step in range(100):
        x = rng.standard_normal((32, 8, 1))
        y = (x[:, 0, 0] > 0).astype(np.int64)
        opt.zero_grad()
        out, (h, _) = lstm(x)
        loss = loss_fn(head(h[0]), y)
        grad_h = head.backward(loss_fn.backward())
        lstm.backward(np.zeros_like(out), (grad_h[None], None))
        opt.step()
        topt.zero_grad()
        _, (th, _) = tlstm(torch.from_numpy(x))
        tloss = torch.nn.functional.cross_entropy(thead(th[0]), torch.from_numpy(y))
        tloss.backward()
        topt.step()
        np.testing.assert_allclose(loss, tloss.item(), rtol=1e-6, err_msg=f"step {step}")
    x = rng.standard_normal((256, 8, 1))
    _, (h, _) = lstm(x)
    _, (th, _) = tlstm(torch.from_numpy(x))
    accuracy = (head(h[0]).argmax(1) == (x[:, 0, 0] > 0)).mean()
    torch_accuracy = (thead(th[0]).argmax(1).numpy() == (x[:, 0, 0] > 0)).mean()
    assert accuracy > 0.75 and abs(accuracy - torch_accuracy) <= 1 / 256  # chance: 0.5


def states(ours, n, rng, dtype):
    """A random initial (h_0, c_0) for ours, batch n (None: unbatched): h's last axis
    proj_size when ours projects, c's hidden_size."""
    lead = (ours.num_layers * (2 if ours.bidirectional else 1),) + (() if n is None else (n,))
    return (rng.standard_normal(lead + (ours.proj_size or ours.hidden_size,)).astype(dtype),
            rng.standard_normal(lead + (ours.hidden_size,)).astype(dtype))


@pytest.mark.parametrize("config", [dict(), dict(num_layers=2, bidirectional=True),
                                    dict(num_layers=3, batch_first=True, bias=False)],
                         ids=["1-layer", "2-layer-bi", "3-layer-bf-no-bias"])
def test_lstm_with_projections_matches_torch(dtype, rng, config):
    """proj_size > 0: torch's parameters (weight_hr, in its state dict's order and
    shapes), outputs, states and every gradient, through layers, directions and time."""
    ours, theirs = twins("LSTM", dtype, proj_size=2, **config)
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [
        (k, tuple(v.shape)) for k, v in theirs.state_dict().items()]
    assert repr(ours) == repr(theirs) and ours.proj_size == 2
    shape = (2, 5, 3) if config.get("batch_first") else (5, 2, 3)
    x = rng.standard_normal(shape).astype(dtype)
    run_both(ours, theirs, x, states(ours, 2, rng, dtype), rng, dtype)
    ours.zero_grad()
    theirs.zero_grad()
    run_both(ours, theirs, x, None, rng, dtype)
    ours.zero_grad()
    theirs.zero_grad()
    run_both(ours, theirs, x[:, 0] if config.get("batch_first") else x[0],  # unbatched
             states(ours, None, rng, dtype), rng, dtype)


def test_lstm_projection_init_and_arguments():
    """weight_hr drawn like every weight, U(-1/sqrt(hidden_size), ...); RNN and GRU
    have proj_size 0, as torch's; a proj_size torch refuses is refused."""
    fastnn.manual_seed(0)
    lstm = nn.LSTM(3, 16, num_layers=2, bidirectional=True, proj_size=5)
    for name, p in lstm.named_parameters():
        assert p.data.dtype == np.float32
        assert np.abs(p.data).max() <= 0.25 and np.abs(p.data).max() > 0.2, name
    assert lstm.weight_hr_l1_reverse.data.shape == (5, 16)
    assert lstm.weight_ih_l1.data.shape == (64, 10) and lstm.weight_hh_l1.data.shape == (64, 5)
    assert nn.RNN(3, 4).proj_size == 0 and nn.GRU(3, 4).proj_size == 0
    assert nn.LSTM(3, 4).proj_size == torch.nn.LSTM(3, 4).proj_size == 0
    for bad in (4, 5, -1, 1.5, True):
        with pytest.raises(ValueError, match=r"LSTM: expected proj_size to be an int in "
                                             r"\[0, hidden_size = 4\)"):
            nn.LSTM(3, 4, proj_size=bad)


@pytest.mark.parametrize("name, kwargs", [
    ("RNN", dict(num_layers=2, bidirectional=True)), ("GRU", dict(batch_first=True)),
    ("LSTM", dict(num_layers=2, bidirectional=True, batch_first=True)),
    ("LSTM", dict(num_layers=2, proj_size=2))])
def test_empty_batch_matches_torch(rng, name, kwargs):
    """N = 0 sequences: empty outputs and states of torch's shapes, empty input and
    state gradients and zero parameter gradients."""
    ours, theirs = twins(name, np.float64, **kwargs)
    x = np.zeros((0, 5, 3) if kwargs.get("batch_first") else (5, 0, 3))
    run_both(ours, theirs, x, states(ours, 0, rng, np.float64), rng, np.float64)
    run_both(ours, theirs, x, None, rng, np.float64)
    for p in ours.parameters():
        np.testing.assert_array_equal(p.grad, 0)
    cell = getattr(nn, name + "Cell")(3, 4, dtype=np.float64)
    h = cell(np.zeros((0, 3)))
    assert (h[0] if name == "LSTM" else h).shape == (0, 4)
    gx, _ = cell.backward((np.zeros((0, 4)), None) if name == "LSTM" else np.zeros((0, 4)))
    assert gx.shape == (0, 3) and not cell.weight_ih.grad.any()


def test_sequence_of_length_zero_is_an_error():
    """torch raises a RuntimeError ("Expected sequence length to be larger than 0");
    fastnn a ValueError naming the layer, before any work."""
    for layer, x in ((nn.RNN(3, 4), np.zeros((0, 2, 3), np.float32)),
                     (nn.GRU(3, 4, batch_first=True), np.zeros((2, 0, 3), np.float32)),
                     (nn.LSTM(3, 4, proj_size=1), np.zeros((0, 3), np.float32))):
        with pytest.raises(ValueError, match=rf"{type(layer).__name__}\(3, 4.*expected a "
                                             rf"sequence length L larger than 0"):
            layer(x)
        with pytest.raises(RuntimeError, match="sequence length"):
            getattr(torch.nn, type(layer).__name__)(3, 4, batch_first=layer.batch_first)(
                torch.from_numpy(x))


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_backward_without_output_gradient(rng, name):
    """grad_output None: zeros, for a loss on h_n only (autograd's view)."""
    kwargs = dict(proj_size=2) if name == "LSTM" else {}
    ours, theirs = twins(name, np.float64, num_layers=2, bidirectional=True, **kwargs)
    x = rng.standard_normal((5, 2, 3))
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    _, th = theirs(tx)
    th = th[0] if name == "LSTM" else th
    g = rng.standard_normal(tuple(th.shape))
    (th * torch.from_numpy(g)).sum().backward()
    ours(x)
    grad_x = ours.backward(None, (g, None) if name == "LSTM" else g)
    assert_close(grad_x, tx.grad.numpy(), np.float64, scale=10)
    named = dict(theirs.named_parameters())
    for pname, p in ours.named_parameters():
        assert_close(p.grad, named[pname].grad.numpy(), np.float64, scale=30, err_msg=pname)
    ours(x)
    np.testing.assert_array_equal(ours.backward(None), 0)   # no gradient at all: zeros


def test_gradients_of_another_dtype_are_refused():
    """As every layer's backward: a float32 gradient for a float64 layer is a TypeError
    (not a silent cast), for the output's, the final states' and a cell's gradients."""
    lstm = nn.LSTM(3, 4, dtype=np.float64)
    out, (h, c) = lstm(np.zeros((2, 1, 3)))
    with pytest.raises(TypeError, match=r"LSTM\(3, 4\): dtype mismatch: grad_output is "
                                        r"float32 but expected float64"):
        lstm.backward(out.astype(np.float32))
    with pytest.raises(TypeError, match="dtype mismatch: grad_c_n is float32"):
        lstm.backward(out, (h, c.astype(np.float32)))
    with pytest.raises(TypeError, match="expected grad_output to be a numpy.ndarray"):
        lstm.backward(out.tolist())
    gru = nn.GRU(3, 4, dtype=np.float64)
    _, h = gru(np.zeros((2, 1, 3)))
    with pytest.raises(TypeError, match="dtype mismatch: grad_hn is float32"):
        gru.backward(None, h.astype(np.float32))
    cell = nn.GRUCell(3, 4, dtype=np.float64)
    h = cell(np.zeros((1, 3)))
    with pytest.raises(TypeError, match=r"GRUCell\(3, 4\): dtype mismatch: grad is float32"):
        cell.backward(h.astype(np.float32))


def test_recurrent_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNN(3, 4, nonlinearity="sigmoid")
    f32 = lambda *shape: np.zeros(shape, np.float32)  # noqa: E731
    with pytest.raises(ValueError, match=r"expected input of shape \(L, N, F\) or \(L, F\)"):
        nn.GRU(3, 4)(f32(2, 5, 2))
    with pytest.raises(ValueError, match=r"expected hx of shape \(2, 5, 4\)"):
        nn.GRU(3, 4, num_layers=2)(f32(2, 5, 3), f32(1, 5, 4))
    with pytest.raises(ValueError, match=r"pair \(h_0, c_0\)"):
        nn.LSTM(3, 4)(f32(2, 5, 3), f32(1, 5, 4))
    with pytest.raises(ValueError, match=r"expected h_0 of shape \(1, 5, 2\)"):
        nn.LSTM(3, 4, proj_size=2)(f32(2, 5, 3), (f32(1, 5, 4), f32(1, 5, 4)))
    with pytest.raises(ValueError, match=r"expected c_0 of shape \(1, 5, 4\)"):
        nn.LSTM(3, 4, proj_size=2)(f32(2, 5, 3), (f32(1, 5, 2), f32(1, 5, 2)))
    with pytest.raises(TypeError, match="does not match the layer's parameters"):
        nn.GRU(3, 4)(np.zeros((2, 5, 3)))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        nn.RNN(3, 4).backward(np.zeros((2, 5, 4)))
    layer = nn.RNN(3, 4)
    layer(f32(2, 5, 3))
    with pytest.raises(ValueError, match=r"expected grad_output of shape \(2, 5, 4\)"):
        layer.backward(f32(5, 2, 4))


@pytest.mark.parametrize("name, kwargs", [("RNNCell", {}), ("RNNCell", dict(nonlinearity="relu")),
                                          ("LSTMCell", {}), ("GRUCell", dict(bias=False))])
def test_cells_unrolled_by_hand_match_torch(dtype, rng, name, kwargs):
    """Three steps of a cell, then three backward calls in reverse order: the inputs',
    the initial state's and the parameters' gradients as torch's; reprs too."""
    theirs = getattr(torch.nn, name)(3, 4, **kwargs).to(TORCH_DTYPES[np.dtype(dtype)])
    ours = getattr(nn, name)(3, 4, dtype=dtype, **kwargs)
    ours.load_state_dict({k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()})
    lstm = name == "LSTMCell"
    xs = [rng.standard_normal((2, 3)).astype(dtype) for _ in range(3)]
    h0, c0 = (rng.standard_normal((2, 4)).astype(dtype) for _ in range(2))
    txs = [torch.from_numpy(x.copy()).requires_grad_(True) for x in xs]
    th0, tc0 = (torch.from_numpy(a.copy()).requires_grad_(True) for a in (h0, c0))
    th, tc, h, c = th0, tc0, h0, c0
    for tx, x in zip(txs, xs):
        if lstm:
            th, tc = theirs(tx, (th, tc))
            h, c = ours(x, (h, c))
        else:
            th = theirs(tx, th)
            h = ours(x, h)
    g = rng.standard_normal((2, 4)).astype(dtype)
    (th * torch.from_numpy(g)).sum().backward()
    assert_close(h, th.detach().numpy(), dtype)
    grad, grads_x = (g, None) if lstm else g, []
    for _ in xs:
        gx, grad = ours.backward(grad)
        grads_x.append(gx)
    for gx, tx in zip(reversed(grads_x), txs):
        assert_close(gx, tx.grad.numpy(), dtype, scale=10)
    assert_close(grad[0] if lstm else grad, th0.grad.numpy(), dtype, scale=10)
    if lstm:
        assert_close(grad[1], tc0.grad.numpy(), dtype, scale=10)
    named = dict(theirs.named_parameters())
    for pname, p in ours.named_parameters():
        assert_close(p.grad, named[pname].grad.numpy(), dtype, scale=30, err_msg=pname)
    assert repr(ours) == repr(theirs)
    with pytest.raises(RuntimeError, match="no forward left to take back"):
        ours.backward(grad)
    ours.eval()
    ours(xs[0])   # eval mode keeps nothing for a backward
    with pytest.raises(RuntimeError, match="no forward left"):
        ours.backward((g, None) if lstm else g)


TORCH_OF_MODE = {"RNN_TANH": ("RNN", {}), "RNN_RELU": ("RNN", dict(nonlinearity="relu")),
                 "LSTM": ("LSTM", {}), "GRU": ("GRU", {})}


@pytest.mark.parametrize("mode", list(TORCH_OF_MODE))
def test_rnn_base_builds_and_runs_the_layer_of_its_mode(rng, mode):
    """RNNBase(mode, ...) as torch's: its parameters (names, shapes, all_weights) and
    repr; it runs as torch's layer of that mode (torch's RNNBase has no forward)."""
    kwargs = dict(num_layers=2, bidirectional=True, batch_first=True)
    ours = RNNBase(mode, 3, 4, dtype=np.float64, **kwargs)
    base = torch.nn.RNNBase(mode, 3, 4, **kwargs)
    assert repr(ours) == repr(base) and ours.mode == base.mode
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: tuple(v.shape) for k, v in base.state_dict().items()}
    assert [[p.data.shape for p in w] for w in ours.all_weights] == [
        [tuple(p.shape) for p in w] for w in base.all_weights]
    name, extra = TORCH_OF_MODE[mode]
    theirs = getattr(torch.nn, name)(3, 4, **kwargs, **extra).double()
    assert theirs.mode == mode == getattr(nn, name)(3, 4, **extra).mode
    ours.load_state_dict({k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()})
    x = rng.standard_normal((2, 5, 3))
    hx = tuple(rng.standard_normal((4, 2, 4)) for _ in range(2))
    run_both(ours, theirs, x, hx, rng, np.float64)
    ours.flatten_parameters()  # nothing to do, as torch's on the CPU


def test_rnn_base_is_the_base_of_the_layers_and_refuses_what_torch_refuses():
    for layer in (nn.RNN(3, 4), nn.LSTM(3, 4, proj_size=2), nn.GRU(3, 4)):
        assert isinstance(layer, RNNBase) and not isinstance(layer, RNNCellBase)
    lstm = RNNBase("LSTM", 3, 4, proj_size=2)
    assert repr(lstm) == repr(torch.nn.RNNBase("LSTM", 3, 4, proj_size=2))
    assert lstm.weight_hr_l0.data.shape == (2, 4) and lstm.weight_hh_l0.data.shape == (16, 2)
    for mode in ("lstm", "RNN", "", None):
        with pytest.raises(ValueError, match="Unrecognized RNN mode"):
            RNNBase(mode, 3, 4)
    with pytest.raises(ValueError, match="Unrecognized RNN mode"):
        torch.nn.RNNBase("lstm", 3, 4)
    for make in (lambda: RNNBase("GRU", 3, 4, proj_size=2), lambda: nn.RNN(3, 4, proj_size=1),
                 lambda: nn.GRU(3, 4, proj_size=1)):
        with pytest.raises(ValueError, match="proj_size argument is only supported for LSTM"):
            make()
    with pytest.raises(ValueError, match="proj_size argument is only supported for LSTM"):
        torch.nn.RNN(3, 4, proj_size=1)


def test_rnn_cell_base_is_the_base_of_the_cells():
    for cell in (nn.RNNCell(3, 4), nn.LSTMCell(3, 4), nn.GRUCell(3, 4)):
        assert isinstance(cell, RNNCellBase) and not isinstance(cell, RNNBase)
    ours, theirs = RNNCellBase(3, 4, False, 4), torch.nn.RNNCellBase(3, 4, False, 4)
    assert repr(ours) == repr(theirs)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert np.abs(ours.weight_ih.data).max() <= 0.5  # U(-1/sqrt(hidden_size), ...)
    with pytest.raises(NotImplementedError):   # no update rule of its own, as torch's
        ours(np.zeros((2, 3), np.float32))
    with pytest.raises(NotImplementedError):
        theirs(torch.zeros(2, 3))
    with pytest.raises(ValueError):
        RNNCellBase(3, 4, True, 0)


def test_dropout_with_one_layer_warns_as_torch():
    with pytest.warns(UserWarning, match="num_layers=1"):
        nn.GRU(3, 4, dropout=0.2)


def test_no_grad_forwards_keep_nothing_and_refuse_backward():
    """Under fastnn.no_grad() a cell keeps no state for backward (a generation loop in
    training mode grew the stack without bound) and a recurrent layer refuses a
    backward, as every layer does after a no_grad forward."""
    x = np.ones((2, 3), np.float32)
    for cell in (nn.RNNCell(3, 4), nn.GRUCell(3, 4), nn.LSTMCell(3, 4)):
        h = None
        with fastnn.no_grad():
            for _ in range(5):
                h = cell(x, h)
        assert not cell._stack
        with pytest.raises(RuntimeError, match="no forward left"):
            cell.backward(h)
    for layer in (nn.LSTM(3, 4), nn.GRU(3, 4, batch_first=True)):
        with fastnn.no_grad():
            out, _ = layer(np.ones((5, 2, 3), np.float32))
        with pytest.raises(RuntimeError, match="gradients disabled"):
            layer.backward(np.ones_like(out))
        out, _ = layer(np.ones((5, 2, 3), np.float32))
        assert layer.backward(np.ones_like(out)).shape == (5, 2, 3)


def test_a_recurrent_layer_in_a_sequential_is_refused_before_any_layer_runs():
    """Sequential(..., GRU) failed in the middle of its forward with AttributeError:
    'tuple' object has no attribute 'shape', after the layers before it had run
    (BatchNorm's running statistics moved). A layer of two outputs is now a TypeError
    naming it, before anything runs; the one-output cells still run in a Sequential."""
    bn = nn.BatchNorm1d(3)
    for last in (nn.GRU(3, 4), nn.LSTM(3, 4), nn.RNN(3, 4), nn.LSTMCell(3, 4)):
        flat = isinstance(last, nn.LSTMCell)
        model = nn.Sequential(nn.Linear(3, 3), bn, *([] if flat else [nn.Unflatten(1, (1, 3))]),
                              last)
        with pytest.raises(TypeError, match=r"Sequential layer \d: .* returns .*a Sequential "
                                            r"passes one array"):
            model(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32))
        np.testing.assert_array_equal(bn.running_mean, 0)
        assert bn.num_batches_tracked == 0
    for cell in (nn.GRUCell(3, 4), nn.RNNCell(3, 4)):
        assert nn.Sequential(cell)(np.ones((2, 3), np.float32)).shape == (2, 4)


def test_a_final_state_gradient_of_the_wrong_shape_is_pytorchs_runtime_error():
    """grad_hn of the wrong shape was a bare ValueError where a wrong grad_output is a
    RuntimeValueError (PyTorch: RuntimeError 'Mismatch in shape')."""
    lstm = nn.LSTM(3, 5)
    out, _ = lstm(np.zeros((4, 2, 3), np.float32))
    with pytest.raises(RuntimeError, match=r"expected grad_hn\[0\]|expected .* of shape"):
        lstm.backward(np.zeros_like(out), (np.zeros((1, 3, 5), np.float32), None))
    with pytest.raises(ValueError):
        lstm.backward(np.zeros_like(out), (np.zeros((1, 3, 5), np.float32), None))


def test_lstm_backward_hooks_see_no_gradient_for_the_state_pair_as_torchs():
    """LSTM's hooks saw grad_output (g, (grad_h_n, grad_c_n)); PyTorch's see (g, None),
    its (h_n, c_n) output being a pair, no tensor. The pair still reaches backward."""
    x = np.random.default_rng(0).standard_normal((3, 2, 3)).astype(np.float32)
    plain = nn.LSTM(3, 4)
    hooked = nn.LSTM(3, 4)
    hooked.load_state_dict(plain.state_dict())
    seen = []
    hooked.register_full_backward_hook(lambda m, gi, go: seen.append(go))
    grads = []
    for model in (plain, hooked):
        out, (h, c) = model(x)
        grads.append(model.backward(np.ones_like(out), (np.ones_like(h), None)))
    np.testing.assert_array_equal(grads[0], grads[1])
    assert len(seen) == 1 and len(seen[0]) == 2 and seen[0][1] is None
    t = torch.nn.LSTM(3, 4)
    theirs = []
    t.register_full_backward_hook(lambda m, gi, go: theirs.append(go))
    o, (th, _) = t(torch.from_numpy(x))
    (o.sum() + th.sum()).backward()
    assert theirs[0][1] is None
