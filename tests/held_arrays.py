"""What a module keeps of a batch: the no_grad tests' check that a forward without
gradients leaves nothing of the batch's size behind."""
import numpy as np


def arrays_held(module, n):
    """The shapes of the arrays of leading size n that module refers to from its own
    state (saved inputs, outputs, masks, layer-owned buffers; also inside tuples, lists
    and dicts), its parameters, registered buffers and sub-modules left out."""
    found = []

    def walk(value, depth):
        if isinstance(value, np.ndarray):
            if value.ndim and value.shape[0] == n:
                found.append(value.shape)
        elif depth < 3 and isinstance(value, (tuple, list)):
            for item in value:
                walk(item, depth + 1)
        elif depth < 3 and isinstance(value, dict):
            for item in value.values():
                walk(item, depth + 1)

    for name, value in vars(module).items():
        if name not in ("_parameters", "_buffers", "_modules"):
            walk(value, 0)
    return found


def arrays_held_in_tree(model, n):
    """``arrays_held`` of every module of model (model included)."""
    return [shape for module in model.modules() for shape in arrays_held(module, n)]
