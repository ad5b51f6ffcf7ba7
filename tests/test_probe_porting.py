"""Porting PyTorch's beginner material (Quickstart, "Training a classifier", "Learning
PyTorch with examples", the MNIST example, "Datasets & DataLoaders") to fastnn: the
idioms a PyTorch user brings, pinned against PyTorch.

Pins what the probe fixed: ``param -= lr * param.grad`` was a silent no-op (the loop
variable became a new array); Parameter had no ``item()``, indexing, ``.T`` or
arithmetic; a Module subclass without backward said "backward called before forward";
``fastnn.data`` had no Dataset / TensorDataset / Subset / ConcatDataset / random_split
and DataLoader took no dataset (nor ``.dataset``, ``collate_fn``, ``num_workers``,
``generator``); ``fastnn.save(model.state_dict(), path)`` was a TypeError and
``fastnn.load(path)`` could not give a state dict back.
"""
import collections
import math
import warnings

import numpy as np
import pytest

import fastnn
from fastnn import data, nn, optim
from fastnn.nn import functional as F

torch = pytest.importorskip("torch")
tdata = torch.utils.data


def to_numpy(batch):
    if isinstance(batch, torch.Tensor):
        return batch.numpy()
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(to_numpy(v) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_numpy(v) for v in batch)
    if isinstance(batch, dict):
        return {k: to_numpy(v) for k, v in batch.items()}
    return batch


def assert_same(a, b):
    """Equal structure, types, dtypes and values (b: a torch batch turned into NumPy)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        assert isinstance(a, np.ndarray) and isinstance(b, np.ndarray), (type(a), type(b))
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert type(a) is type(b) and list(a) == list(b)
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for u, v in zip(a, b):
            assert_same(u, v)
    else:
        assert a == b


# ------------------------------------------------------------------ Parameter idioms
def test_manual_sgd_update_on_parameters_matches_torch():
    """'Learning PyTorch with examples', nn version: the update loop of the tutorial."""
    x = np.linspace(-math.pi, math.pi, 2000)
    y = np.sin(x)
    xx = x[:, None] ** np.array([1, 2, 3])
    torch.manual_seed(0)
    tmodel = torch.nn.Sequential(torch.nn.Linear(3, 1), torch.nn.Flatten(0, 1)).double()
    model = nn.Sequential(nn.Linear(3, 1), nn.Flatten(0, 1)).double()
    model.load_state_dict({k: v.numpy() for k, v in tmodel.state_dict().items()})
    weight = model[0].weight
    data_before = weight.data
    loss_fn, tloss_fn = nn.MSELoss(reduction="sum"), torch.nn.MSELoss(reduction="sum")
    for _ in range(300):
        loss = loss_fn(model(xx), y)
        model.zero_grad()
        model.backward(loss_fn.backward())
        with fastnn.no_grad():
            for param in model.parameters():
                param -= 1e-6 * param.grad
        tloss = tloss_fn(tmodel(torch.from_numpy(xx)), torch.from_numpy(y))
        tmodel.zero_grad()
        tloss.backward()
        with torch.no_grad():
            for param in tmodel.parameters():
                param -= 1e-6 * param.grad
        assert loss.item() == pytest.approx(tloss.item(), rel=1e-12)
    assert model[0].weight is weight and weight.data is data_before  # updated in place
    layer, tlayer = model[0], tmodel[0]
    assert layer.bias.item() == pytest.approx(tlayer.bias.item(), rel=1e-12)
    for i in range(3):  # the tutorial's print: linear_layer.weight[:, i].item()
        assert layer.weight[:, i].item() == pytest.approx(tlayer.weight[:, i].item(), rel=1e-12)


def test_parameter_array_idioms():
    p = nn.Parameter(np.arange(6, dtype=np.float32).reshape(2, 3))
    x = np.ones((4, 3), np.float32)
    t = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    np.testing.assert_array_equal(x @ p.T + p[0, :2].sum(), (torch.ones(4, 3) @ t.T
                                                            + t[0, :2].sum()).numpy())
    np.testing.assert_array_equal(2 * p - p / 2 + p ** 2, (2 * t - t / 2 + t ** 2).numpy())
    np.testing.assert_array_equal(-p, -t.numpy())
    assert p.tolist() == t.tolist() and float(p[1, 2]) == 5.0
    assert nn.Parameter(np.array(2.5)).item() == 2.5 and float(nn.Parameter([3.0])) == 3.0
    with pytest.raises(ValueError, match="6 elements"):
        p.item()
    data_ = p.data
    p += np.ones(3)            # float64 update of float32 data: stays float32, in place
    p *= 2
    p[0, 0] = -1
    p /= 2
    assert p.data is data_ and p.dtype == np.float32
    np.testing.assert_array_equal(p.data, [[-0.5, 2, 3], [4, 5, 6]])
    # an optimizer's flat buffer stays attached to an in-place update
    lin = nn.Linear(2, 2)
    opt = optim.SGD(lin.parameters(), lr=0.5)
    w0 = lin.weight.data.copy()
    lin.weight -= 1.0
    lin.weight.grad[...] = 1.0
    opt.step()
    # (two roundings, as the updates make them: w0 - 1.5 in one can differ by an ulp)
    np.testing.assert_array_equal(lin.weight.data, (w0 - np.float32(1)) - np.float32(0.5))
    assert isinstance(lin.weight, nn.Parameter)


def test_custom_polynomial_module_matches_torch():
    """Polynomial3 with scalar Parameters in an expression and a hand-written backward."""
    class Polynomial3(nn.Module):
        def __init__(self, values):
            super().__init__()
            self.a, self.b, self.c, self.d = (nn.Parameter(np.array(v)) for v in values)

        def forward(self, x):
            self.x = x
            return self.a + self.b * x + self.c * x ** 2 + self.d * x ** 3

        def backward(self, g):
            x = self.x
            for p, power in zip((self.a, self.b, self.c, self.d), range(4)):
                p.grad += (g * x ** power).sum()
            return g * (self.b + 2 * self.c * x + 3 * self.d * x ** 2)

    class TPolynomial3(torch.nn.Module):
        def __init__(self, values):
            super().__init__()
            self.a, self.b, self.c, self.d = (
                torch.nn.Parameter(torch.tensor(v, dtype=torch.float64)) for v in values)

        def forward(self, x):
            return self.a + self.b * x + self.c * x ** 2 + self.d * x ** 3

    values = [0.3, -0.2, 0.1, 0.05]
    model, tmodel = Polynomial3(values), TPolynomial3(values)
    x = np.linspace(-math.pi, math.pi, 500)
    y = np.sin(x)
    crit, tcrit = nn.MSELoss(reduction="sum"), torch.nn.MSELoss(reduction="sum")
    opt = optim.SGD(model.parameters(), lr=1e-5)
    topt = torch.optim.SGD(tmodel.parameters(), lr=1e-5)
    for _ in range(200):
        loss = crit(model(x), y)
        opt.zero_grad()
        model.backward(crit.backward())
        opt.step()
        tloss = tcrit(tmodel(torch.from_numpy(x)), torch.from_numpy(y))
        topt.zero_grad()
        tloss.backward()
        topt.step()
    assert loss.item() == pytest.approx(tloss.item(), rel=1e-12)
    got = f"y = {model.a.item():.9f} + {model.b.item():.9f} x"
    assert got == f"y = {tmodel.a.item():.9f} + {tmodel.b.item():.9f} x"


# ------------------------------------------------------------ Module subclass backward
class QuickstartNet(nn.Module):
    def __init__(self, with_backward=True):
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear_relu_stack = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 32),
                                               nn.ReLU(), nn.Linear(32, 10))

    def forward(self, x):
        return self.linear_relu_stack(self.flatten(x))


class QuickstartNetBackward(QuickstartNet):
    def backward(self, grad):
        return self.flatten.backward(self.linear_relu_stack.backward(grad))


def test_subclass_without_backward_says_so():
    model = QuickstartNet()
    loss_fn = nn.CrossEntropyLoss()
    loss_fn(model(np.ones((2, 8, 8), np.float32)), np.array([1, 2]))
    with pytest.raises(NotImplementedError, match="QuickstartNet defines forward\\(\\) but not "
                                                  "backward"):
        model.backward(loss_fn.backward())
    # a layer never run still says "before forward"
    with pytest.raises(RuntimeError, match="backward called before forward"):
        nn.Linear(2, 2).backward(np.ones((1, 2), np.float32))


def test_quickstart_port_matches_torch(tmp_path):
    """The Quickstart loop on digits: a Dataset in DataLoader, len(loader.dataset),
    train()/eval(), no_grad, argmax accuracy, the state-dict round trip via fastnn.save."""
    x_train, y_train, x_test, y_test = data.load("digits", dtype="float64")
    x_train, y_train = x_train[:256], y_train[:256]
    torch.manual_seed(0)
    tmodel = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Sequential(
        torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 32), torch.nn.ReLU(),
        torch.nn.Linear(32, 10))).double()
    model = QuickstartNetBackward().double()
    assert model.train() is model and model.eval() is model
    model.load_state_dict({k.replace("1.", "linear_relu_stack.", 1): v.numpy()
                           for k, v in tmodel.state_dict().items()})
    loader = data.DataLoader(data.TensorDataset(x_train, y_train), batch_size=64)
    tloader = tdata.DataLoader(tdata.TensorDataset(torch.from_numpy(x_train),
                                                   torch.from_numpy(y_train)), batch_size=64)
    assert len(loader.dataset) == len(tloader.dataset) == 256 and len(loader) == 4
    loss_fn, tloss_fn = nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()
    opt, topt = optim.SGD(model.parameters(), lr=0.1), torch.optim.SGD(tmodel.parameters(), lr=0.1)
    for _ in range(2):
        model.train()
        for (X, y), (TX, TY) in zip(loader, tloader):
            loss = loss_fn(model(X), y)
            model.backward(loss_fn.backward())
            opt.step()
            opt.zero_grad()
            tloss = tloss_fn(tmodel(TX), TY)
            tloss.backward()
            topt.step()
            topt.zero_grad()
            assert loss.item() == pytest.approx(tloss.item(), rel=1e-10)
    path = tmp_path / "model.pth"
    fastnn.save(model.state_dict(), path)
    fresh = QuickstartNetBackward().double()
    fresh.load_state_dict(fastnn.load(path, weights_only=True))
    fresh.eval()
    with fastnn.no_grad():
        pred = fresh(x_test)
    with torch.no_grad():
        tpred = tmodel(torch.from_numpy(x_test))
    correct = (pred.argmax(1) == y_test).astype(np.float64).sum().item()
    assert correct == (tpred.argmax(1) == torch.from_numpy(y_test)).type(torch.float).sum().item()
    np.testing.assert_allclose(pred, tpred.numpy(), rtol=1e-9, atol=1e-12)


def test_mnist_example_port_matches_torch():
    """pytorch/examples mnist: Conv2d, ReLU/max-pool/flatten/log_softmax as modules (one
    per use), Dropout (p=0 here, for equal masks), NLLLoss, Adadelta + StepLR,
    F.nll_loss(reduction='sum') in the test loop; float64 on digits."""
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2 = nn.Conv2d(1, 4, 3, 1), nn.Conv2d(4, 8, 3, 1)
            self.dropout1, self.dropout2 = nn.Dropout(0.0), nn.Dropout(0.0)
            self.fc1, self.fc2 = nn.Linear(8 * 2 * 2, 16), nn.Linear(16, 10)
            self.relu1, self.relu2, self.relu3 = nn.ReLU(), nn.ReLU(), nn.ReLU()
            self.pool, self.flatten, self.log_softmax = (nn.MaxPool2d(2), nn.Flatten(),
                                                         nn.LogSoftmax(dim=1))

        def forward(self, x):
            x = self.relu2(self.conv2(self.relu1(self.conv1(x))))
            x = self.flatten(self.dropout1(self.pool(x)))
            x = self.dropout2(self.relu3(self.fc1(x)))
            return self.log_softmax(self.fc2(x))

        def backward(self, g):
            g = self.fc2.backward(self.log_softmax.backward(g))
            g = self.fc1.backward(self.relu3.backward(self.dropout2.backward(g)))
            g = self.pool.backward(self.dropout1.backward(self.flatten.backward(g)))
            return self.conv1.backward(self.relu1.backward(self.conv2.backward(
                self.relu2.backward(g))))

    class TNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2 = torch.nn.Conv2d(1, 4, 3, 1), torch.nn.Conv2d(4, 8, 3, 1)
            self.dropout1, self.dropout2 = torch.nn.Dropout(0.0), torch.nn.Dropout(0.0)
            self.fc1, self.fc2 = torch.nn.Linear(8 * 2 * 2, 16), torch.nn.Linear(16, 10)

        def forward(self, x):
            x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
            x = torch.flatten(self.dropout1(torch.nn.functional.max_pool2d(x, 2)), 1)
            x = self.dropout2(torch.relu(self.fc1(x)))
            return torch.nn.functional.log_softmax(self.fc2(x), dim=1)

    x_train, y_train, x_test, y_test = data.load("digits", dtype="float64")
    x_train, x_test = (x_train[:192, None] - 0.3) / 0.4, (x_test[:100, None] - 0.3) / 0.4
    y_train, y_test = y_train[:192], y_test[:100]
    torch.manual_seed(1)
    tmodel, model = TNet().double(), Net().double()
    model.load_state_dict({k: v.numpy() for k, v in tmodel.state_dict().items()})
    opt = optim.Adadelta(model.parameters(), lr=1.0)
    topt = torch.optim.Adadelta(tmodel.parameters(), lr=1.0)
    sched = optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    tsched = torch.optim.lr_scheduler.StepLR(topt, step_size=1, gamma=0.7)
    nll = nn.NLLLoss()
    loader = data.DataLoader(x_train, y_train, batch_size=64)
    test_loader = data.DataLoader(data.TensorDataset(x_test, y_test), batch_size=50)
    for _ in range(3):
        model.train()
        tmodel.train()
        for X, y in loader:
            opt.zero_grad()
            loss = nll(model(X), y)
            model.backward(nll.backward())
            opt.step()
            topt.zero_grad()
            tloss = torch.nn.functional.nll_loss(tmodel(torch.from_numpy(X)), torch.from_numpy(y))
            tloss.backward()
            topt.step()
            assert loss.item() == pytest.approx(tloss.item(), rel=1e-10)
        model.eval()
        test_loss = correct = 0
        with fastnn.no_grad():
            for X, y in test_loader:
                output = model(X)
                test_loss += F.nll_loss(output, y, reduction="sum").item()
                pred = output.argmax(axis=1, keepdims=True)
                correct += (pred == y.reshape(pred.shape)).sum().item()
        with torch.no_grad():
            tout = tmodel.eval()(torch.from_numpy(x_test))
        assert test_loss / len(test_loader.dataset) == pytest.approx(
            torch.nn.functional.nll_loss(tout, torch.from_numpy(y_test), reduction="sum").item()
            / 100, rel=1e-10)
        assert correct == (tout.argmax(1).numpy() == y_test).sum()
        sched.step()
        tsched.step()
        assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-15)


# ------------------------------------------------------------------------- datasets
Pair = collections.namedtuple("Pair", "image label")
X = np.arange(60, dtype=np.float32).reshape(12, 5)
Y = np.arange(12) % 4
SAMPLES = {
    "tuple": lambda i: (X[i], int(Y[i])),
    "list-float": lambda i: [X[i], i / 3],
    "dict-str": lambda i: {"image": X[i], "label": int(Y[i]), "name": f"s{i}"},
    "namedtuple": lambda i: Pair(X[i], np.int64(Y[i])),
    "array": lambda i: X[i],
    "numpy-scalar": lambda i: np.float32(i),
    "bool": lambda i: i % 2 == 0,
}


def make_dataset(base, kind):
    class Samples(base):
        def __len__(self):
            return 11

        def __getitem__(self, i):
            return SAMPLES[kind](i)
    return Samples()


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_dataloader_over_a_custom_dataset_matches_torch(kind):
    for batch_size in (1, 4, 11, 12):
        for drop_last in (False, True):
            ours = list(data.DataLoader(make_dataset(data.Dataset, kind), batch_size=batch_size,
                                        drop_last=drop_last))
            theirs = [to_numpy(b) for b in tdata.DataLoader(make_dataset(tdata.Dataset, kind),
                                                            batch_size=batch_size,
                                                            drop_last=drop_last)]
            assert len(ours) == len(theirs)
            assert_same(ours, theirs)


def test_dataloader_dataset_arguments():
    ds = make_dataset(data.Dataset, "tuple")
    assert data.DataLoader(ds).batch_size == 1               # PyTorch's default over a dataset
    assert data.DataLoader(X, Y).batch_size == 32            # fastnn's over arrays, as before
    loader = data.DataLoader(ds, 4)                          # PyTorch's positional batch_size
    assert loader.batch_size == 4 and len(loader) == 3 and loader.dataset is ds
    assert len(data.DataLoader(X, Y).dataset) == 12
    x0, y0 = data.DataLoader(X, Y).dataset[3]
    np.testing.assert_array_equal(x0, X[3])
    with pytest.raises(TypeError, match="y must be None"):
        data.DataLoader(ds, Y)
    with pytest.raises(TypeError, match="batch_size twice"):
        data.DataLoader(ds, 4, batch_size=4)
    with pytest.raises(ValueError, match="num_workers option should be non-negative"):
        data.DataLoader(ds, num_workers=-1)
    with pytest.raises(TypeError, match="not both"):
        data.DataLoader(ds, seed=1, generator=1)
    # num_workers / pin_memory accepted (batches made in this process), collate_fn used
    seen = []
    loader = data.DataLoader(ds, batch_size=5, num_workers=2, pin_memory=True,
                             collate_fn=lambda samples: seen.append(len(samples)) or len(samples))
    assert list(loader) == [5, 5, 1] == seen
    # a shuffled pass visits every sample once; generator= is seed=
    for shuffled in (data.DataLoader(ds, batch_size=4, shuffle=True, generator=3),
                     data.DataLoader(data.TensorDataset(X, Y), batch_size=5, shuffle=True,
                                     seed=np.random.default_rng(3))):
        rows = np.concatenate([b[0] for b in shuffled])
        assert sorted(rows[:, 0].tolist()) == sorted(X[:len(rows), 0].tolist())

    class Many(data.Dataset):  # __getitems__ is used when the dataset has it (PyTorch's)
        def __len__(self):
            return 6

        def __getitems__(self, indices):
            return [(X[i], -i) for i in indices]
    batches = list(data.DataLoader(Many(), batch_size=4))
    np.testing.assert_array_equal(batches[1][1], [-4, -5])


def test_tensor_dataset_subset_concat_match_torch():
    tx, ty = torch.from_numpy(X), torch.from_numpy(Y)
    for batch_size in (1, 5, 12):
        pairs = [
            (data.TensorDataset(X, Y), tdata.TensorDataset(tx, ty)),
            (data.Subset(data.TensorDataset(X, Y), [3, 1, 4, 1, 5, 9, 2, -1]),
             tdata.Subset(tdata.TensorDataset(tx, ty), [3, 1, 4, 1, 5, 9, 2, -1])),
            (data.Subset(data.Subset(data.TensorDataset(X, Y), [3, 1, 4, 1, 5]), [0, 2, -2]),
             tdata.Subset(tdata.Subset(tdata.TensorDataset(tx, ty), [3, 1, 4, 1, 5]),
                          [0, 2, -2])),
            (data.TensorDataset(X, Y) + data.TensorDataset(X[:3], Y[:3]),
             tdata.TensorDataset(tx, ty) + tdata.TensorDataset(tx[:3], ty[:3])),
        ]
        for ours, theirs in pairs:
            assert len(ours) == len(theirs)
            assert_same(list(data.DataLoader(ours, batch_size=batch_size)),
                        [to_numpy(b) for b in tdata.DataLoader(theirs, batch_size=batch_size)])
    concat = data.ConcatDataset([data.TensorDataset(X, Y), data.TensorDataset(X[:3], Y[:3])])
    tconcat = tdata.ConcatDataset([tdata.TensorDataset(tx, ty),
                                   tdata.TensorDataset(tx[:3], ty[:3])])
    assert concat.cumulative_sizes == tconcat.cumulative_sizes == [12, 15]
    for i in (0, 11, 12, 14, -1, -15):
        np.testing.assert_array_equal(concat[i][0], tconcat[i][0].numpy())
    with pytest.raises(ValueError, match="should not exceed dataset length"):
        concat[-16]
    with pytest.raises(ValueError, match="size mismatch"):
        data.TensorDataset(X, Y[:5])
    # a TensorDataset gives the batches the array loader gives, shuffled with the same seed
    ours = list(data.DataLoader(data.TensorDataset(X, Y), batch_size=5, shuffle=True, seed=7))
    arrays = list(data.DataLoader(X, Y, batch_size=5, shuffle=True, seed=7))
    for (a, b), (c, d) in zip(ours, arrays):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    # the per-sample path (a custom Dataset) gives the same shuffled batches
    custom = list(data.DataLoader(make_dataset(data.Dataset, "tuple"), batch_size=4,
                                  shuffle=True, seed=2))
    fast = list(data.DataLoader(data.TensorDataset(X[:11], Y[:11]), batch_size=4, shuffle=True,
                                seed=2))
    assert_same(custom, fast)


@pytest.mark.parametrize("n", [10, 11, 97])
def test_random_split_lengths_match_torch(n):
    for lengths in ([0.8, 0.2], [0.5, 0.3, 0.2], [1 / 3] * 3, [0.1] * 10, [n - 3, 3],
                    [0.05, 0.95]):
        with warnings.catch_warnings(record=True) as ours_w:
            warnings.simplefilter("always")
            ours = data.random_split(data.TensorDataset(np.zeros(n)), lengths)
        with warnings.catch_warnings(record=True) as theirs_w:
            warnings.simplefilter("always")
            theirs = tdata.random_split(tdata.TensorDataset(torch.zeros(n)), lengths)
        assert [len(s) for s in ours] == [len(s) for s in theirs]
        assert len(ours_w) == len(theirs_w)
        assert sorted(i for s in ours for i in s.indices) == list(range(n))
    for bad, match in (([5, 4], "Sum of input lengths"), ([1.5, -0.5], "Fraction at index 0"),
                       ([-1, 11], "non-negative")):
        with pytest.raises(ValueError, match=match):
            data.random_split(data.TensorDataset(np.zeros(10)), bad)
    # reproducible from fastnn.manual_seed (PyTorch's default generator) or a given seed
    fastnn.manual_seed(5)
    first = data.random_split(range(20), [15, 5])[1].indices
    fastnn.manual_seed(5)
    assert data.random_split(range(20), [15, 5])[1].indices == first
    by_int = data.random_split(range(20), [0.5, 0.5], generator=3)[0].indices
    by_rng = data.random_split(range(20), [0.5, 0.5], generator=np.random.default_rng(3))
    assert by_int == by_rng[0].indices


def test_dataset_tutorial_with_transforms_trains_as_torch():
    """A custom Dataset with transform / target_transform (one-hot), random_split, and
    training on its DataLoader batches, step for step with torch (float64)."""
    x_train, y_train, _, _ = data.load("digits")
    raw = (x_train[:200] * 16).astype(np.uint8)

    class Digits(data.Dataset):
        def __init__(self, images, labels, transform=None, target_transform=None):
            self.images, self.labels = images, labels
            self.transform, self.target_transform = transform, target_transform

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, idx):
            image, label = self.images[idx], int(self.labels[idx])
            if self.transform:
                image = self.transform(image)
            if self.target_transform:
                label = self.target_transform(label)
            return image, label

    def one_hot(label):
        v = np.zeros(10)
        v[label] = 1
        return v

    dataset = Digits(raw, y_train[:200], transform=lambda im: (im / 16.0)[None],
                     target_transform=one_hot)
    fastnn.manual_seed(0)
    train_set, val_set = data.random_split(dataset, [0.75, 0.25])
    assert (len(train_set), len(val_set)) == (150, 50)
    features, labels = next(iter(data.DataLoader(train_set, batch_size=32, shuffle=True)))
    assert features.shape == (32, 1, 8, 8) and labels.shape == (32, 10)

    class TDigits(tdata.Dataset):
        def __len__(self):
            return 200

        def __getitem__(self, idx):
            image = torch.from_numpy(raw[idx] / 16.0)[None]
            return image, torch.zeros(10, dtype=torch.float64).scatter_(
                0, torch.tensor(int(y_train[idx])), value=1)

    torch.manual_seed(0)
    tmodel = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)).double()
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).double()
    model.load_state_dict({k: v.numpy() for k, v in tmodel.state_dict().items()})
    loss_fn, tloss_fn = nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()
    opt, topt = optim.SGD(model.parameters(), lr=0.5), torch.optim.SGD(tmodel.parameters(), lr=0.5)
    loader = data.DataLoader(train_set, batch_size=32)
    tloader = tdata.DataLoader(tdata.Subset(TDigits(), train_set.indices), batch_size=32)
    for (xb, yb), (txb, tyb) in zip(loader, tloader):
        np.testing.assert_array_equal(xb, txb.numpy())
        loss = loss_fn(model(xb), yb)
        opt.zero_grad()
        model.backward(loss_fn.backward())
        opt.step()
        tloss = tloss_fn(tmodel(txb), tyb)
        topt.zero_grad()
        tloss.backward()
        topt.step()
        assert loss.item() == pytest.approx(tloss.item(), rel=1e-12)


# ------------------------------------------------------------------ save / load dicts
def test_save_and_load_state_dicts_as_torch(tmp_path):
    def make():
        return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 4)).astype(np.float32), rng.integers(0, 3, 16)
    loss_fn = nn.CrossEntropyLoss()

    def step(model, opt):
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        model.backward(loss_fn.backward())
        opt.step()
        return loss

    for Opt, kw in ((optim.SGD, dict(lr=0.1, momentum=0.9)), (optim.Adam, dict(lr=0.01))):
        model = make()
        opt = Opt(model.parameters(), **kw)
        for _ in range(3):
            step(model, opt)
        fastnn.save(model.state_dict(), tmp_path / "model.pth")      # torch.save idiom
        state = fastnn.load(tmp_path / "model.pth", weights_only=True, map_location="cpu")
        assert isinstance(state, collections.OrderedDict)
        assert list(state) == list(model.state_dict())
        fresh = make()
        assert not fresh.load_state_dict(state).missing_keys
        assert fastnn.load(tmp_path / "model.pth", model=make()) is not None
        # PyTorch's "general checkpoint": a dict of state dicts and numbers
        fastnn.save({"epoch": 3, "model_state_dict": model.state_dict(),
                     "optimizer_state_dict": opt.state_dict(), "loss": 0.25},
                    tmp_path / "ckpt.tar")
        ckpt = fastnn.load(tmp_path / "ckpt.tar")
        assert ckpt["epoch"] == 3 and ckpt["loss"] == 0.25
        resumed = make()
        resumed_opt = Opt(resumed.parameters(), **kw)
        resumed.load_state_dict(ckpt["model_state_dict"])
        resumed_opt.load_state_dict(ckpt["optimizer_state_dict"])
        for _ in range(3):
            assert step(model, opt) == step(resumed, resumed_opt)
        for p, q in zip(model.parameters(), resumed.parameters()):
            np.testing.assert_array_equal(p.data, q.data)
    with pytest.raises(fastnn.io.CheckpointError, match="fastnn.load\\(path\\) returns it"):
        fastnn.io.load_checkpoint(tmp_path / "model.pth")
    with pytest.raises(TypeError, match="optimizer= needs the model"):
        fastnn.save(model.state_dict(), tmp_path / "x.pth", optimizer=opt)
    with pytest.raises(TypeError, match="string keys"):
        fastnn.save({1: np.zeros(2)}, tmp_path / "x.pth")
    with pytest.raises(TypeError, match="expected a Module or a state dict, got int"):
        fastnn.save(3, tmp_path / "x.pth")


def test_unseeded_shuffling_follows_manual_seed_as_pytorchs():
    from fastnn.data import DataLoader
    x = np.arange(40, dtype=np.float32).reshape(20, 2)

    def first_epoch():
        return [b.copy() for b in DataLoader(x, batch_size=5, shuffle=True)]

    fastnn.manual_seed(3)
    a = first_epoch()
    fastnn.manual_seed(3)
    b = first_epoch()
    fastnn.manual_seed(4)
    c = first_epoch()
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not all(np.array_equal(p, q) for p, q in zip(a, c))
    # a loader that does not shuffle leaves the global generator alone
    fastnn.manual_seed(3)
    state = fastnn.random.get_state()
    list(DataLoader(x, batch_size=5))
    assert fastnn.random.get_state() == state
