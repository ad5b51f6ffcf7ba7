"""MLP: a multi-layer perceptron of any depth, built as a Sequential (so fused)."""
import numbers

from .. import nn
from ..validation import check_flag, check_number, check_positive_int

# name -> the layer, made from (negative_slope, omega): each takes what it uses
_ACTIVATIONS = {
    "relu": lambda slope, omega: nn.ReLU(),
    "leaky_relu": lambda slope, omega: nn.LeakyReLU(slope),
    "sigmoid": lambda slope, omega: nn.Sigmoid(),
    "tanh": lambda slope, omega: nn.Tanh(),
    "gelu": lambda slope, omega: nn.GELU(),
    "sine": lambda slope, omega: nn.Sine(omega),
    "silu": lambda slope, omega: nn.SiLU(),
    "elu": lambda slope, omega: nn.ELU(),
    "gelu_tanh": lambda slope, omega: nn.GELU(approximate="tanh"),
    "mish": lambda slope, omega: nn.Mish(),
}


def hidden_widths(where, hidden):
    """hidden (an int or a list/tuple of ints) as a list of positive ints."""
    if isinstance(hidden, numbers.Integral) and not isinstance(hidden, bool):
        hidden = [hidden]
    if not isinstance(hidden, (list, tuple)):
        raise TypeError(f"{where}: expected hidden to be an int or a list of ints, "
                        f"got {hidden!r}")
    return [check_positive_int(where, "each hidden width", h) for h in hidden]


def check_activation(where, activation):
    """ValueError naming where unless activation is one of _ACTIVATIONS' names."""
    if not isinstance(activation, str) or activation not in _ACTIVATIONS:
        raise ValueError(f"{where}: expected activation in {sorted(_ACTIVATIONS)}, "
                         f"got {activation!r:.80}")


class MLP(nn.Sequential):
    """in_features -> hidden blocks -> Linear(out_features), outputting logits.

    hidden: an int or a list of ints (``[]`` gives a linear model). Each hidden block is
    Linear -> [BatchNorm1d if batchnorm] -> activation -> [Dropout(dropout) if dropout > 0].
    activation: 'relu', 'leaky_relu' (with negative_slope), 'sigmoid', 'tanh', 'gelu',
    'sine' (``nn.Sine(omega)``, sin(omega x); omega a finite number, 1.0 by default, as
    nn.Sine's and MultiTaskNet's), 'silu', 'elu', 'gelu_tanh', 'mish'. negative_slope and
    omega are checked whatever the activation, and used by the one that takes them.
    Input (N, in_features); output (N, out_features).
    ``config`` holds the constructor arguments and ``config_name`` is 'mlp', so
    ``fastnn.save``/``fastnn.load`` can rebuild the model.
    """

    config_name = "mlp"

    def __init__(self, in_features, hidden, out_features, activation="relu",
                 negative_slope=0.01, batchnorm=False, dropout=0.0, omega=1.0):
        in_features = check_positive_int("MLP", "in_features", in_features)
        out_features = check_positive_int("MLP", "out_features", out_features)
        hidden = hidden_widths("MLP", hidden)
        # (checked here, not only by the layers they make: with no hidden layer there are
        # none, and a string such as 'no' is not read as True)
        batchnorm = check_flag("MLP", "batchnorm", batchnorm)
        check_number("MLP", "negative_slope", negative_slope)
        check_number("MLP", "omega", omega)
        check_number("MLP", "dropout", dropout, low=0, high=1, high_open=False)
        check_activation("MLP", activation)
        # Build the layers first: a bad argument raises before anything is registered.
        layers = []
        width = in_features
        for h in hidden:
            layers.append(nn.Linear(width, h))
            if batchnorm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(_ACTIVATIONS[activation](negative_slope, omega))
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, out_features))
        super().__init__(*layers)
        self.config = dict(in_features=in_features, hidden=list(hidden),
                           out_features=out_features, activation=activation,
                           negative_slope=float(negative_slope), batchnorm=bool(batchnorm),
                           dropout=float(dropout), omega=float(omega))

    def extra_repr(self):
        c = self.config
        return (f"in_features={c['in_features']}, hidden={c['hidden']}, "
                f"out_features={c['out_features']}, activation={c['activation']!r}")
