"""Checkpoints: a model (and optionally its optimizer) saved to one ``.npz`` file.

``fastnn.save(model, path, optimizer=None, extra=None)`` writes, atomically (a temporary
file in the same folder, fsync, then ``os.replace``), one ``.npz`` holding:

* ``__fastnn_checkpoint__``: a JSON string with the format name and version, the model's
  class, ``config_name`` and ``config`` (when it has them, so ``load(path)`` alone can
  rebuild it; a tree of fastnn.nn's own layers instead gets a ``rebuild`` recipe: each
  module's class name and constructor arguments, see ``_rebuild_recipe``), the order of
  its state arrays, the optimizer's type, hyper-parameters and step counts, the state of
  fastnn's global random generator, and ``extra`` (epoch, metrics...: described as the
  optimizer's state is, its arrays under ``extra/``, and as JSON);
* ``model/<name>``: every array of ``model.state_dict()``;
* ``optimizer/<index>/<name>``: the optimizer's state arrays (momentum, Adam moments).

No pickle is involved, in either direction. ``fastnn.load(path, model=None,
optimizer=None)`` returns the model (rebuilt from the file's config when ``model`` is
None); ``load_checkpoint`` returns everything (model, optimizer, extra). Every check
(is this a fastnn checkpoint, do names and shapes fit the model, does the optimizer state
fit the optimizer) runs before anything is written: a failed load changes nothing.
"""
import collections
import collections.abc
import errno
import importlib
import json
import os
import stat
import tempfile

import numpy as np

from . import device as _device
from . import nn
from .errors import RuntimeValueError
from .nn import plain_values
from .nn.module import Module

FORMAT = "fastnn-checkpoint"
FORMAT_VERSION = 1
META_KEY = "__fastnn_checkpoint__"
MODEL_PREFIX = "model/"
OPTIMIZER_PREFIX = "optimizer/"
EXTRA_KEY = "extra"   # extra's arrays: extra, extra/<name>, extra/<i>...

#: config_name -> class name in fastnn.models, looked up when a file is loaded
MODEL_REGISTRY = {
    "mlp": "MLP",
    "convnet": "ConvNet",
    "cnn": "SmallCNN",
    "multitask": "MultiTaskNet",
    "vae": "VAE",
}

Checkpoint = collections.namedtuple("Checkpoint",
                                    ["model", "optimizer", "extra", "format_version"])


class CheckpointError(RuntimeValueError):
    """A file that is not a fastnn checkpoint, or one that does not fit the model/optimizer:
    a ValueError (fastnn's bad input) and the RuntimeError PyTorch's load_state_dict raises
    for a checkpoint that does not fit, so code ported from PyTorch catches it."""


# ----------------------------------------------------------------------- saving
def save(model, path, optimizer=None, extra=None):
    """Write model (and optimizer) state to ``path`` as one .npz, atomically.

    model: a fastnn Module; optimizer: an Optimizer over (some of) its parameters, or None;
    extra: a value stored with the checkpoint (e.g. {"epoch": 3}), or None: strings,
    numbers, NumPy scalars and arrays, lists, tuples and dicts of them with str or int
    keys come back from load_checkpoint as saved; any other JSON-serialisable value
    (a dict with float keys) as JSON gives it back.
    The file at ``path`` is either the complete new checkpoint or, on any failure, left as
    it was. Returns ``path``.

    As PyTorch's ``torch.save(model.state_dict(), path)``, model may instead be a dict
    with string keys: a state dict, or a dict of state dicts, optimizer state dicts,
    numbers and strings (PyTorch's "general checkpoint"); ``load(path)`` returns it.
    """
    meta, arrays = _pack(model, optimizer, extra)
    arrays[META_KEY] = np.array(_dumps(meta, "checkpoint metadata"))
    if callable(getattr(path, "write", None)):   # a file object (torch.save takes one)
        np.savez(path, **arrays)
    else:
        _write_atomically(os.fspath(path), arrays)
    return path


def _pack(model, optimizer, extra):
    if isinstance(model, collections.abc.Mapping) and not hasattr(model, "state_dict"):
        # torch.save(model.state_dict(), path): the dict itself, given back by load(path)
        if optimizer is not None:
            raise TypeError("fastnn.save: optimizer= needs the model, not a state dict; "
                            "put optimizer.state_dict() in the dict instead")
        if not all(isinstance(k, str) for k in model):
            raise TypeError("fastnn.save: a dict to save must have string keys")
        # (a state_dict(keep_vars=True)'s Parameters as their values, and a GPU model's
        # arrays, on the host)
        state = {k: _host_value(v) for k, v in model.items()}
        model = None
    elif not hasattr(model, "state_dict"):
        raise TypeError(f"fastnn.save: expected a Module or a state dict, got "
                        f"{type(model).__name__}")
    else:
        state = model.state_dict()
    arrays = {}
    for name, value in state.items():
        if isinstance(value, np.ndarray):
            _add_array(arrays, MODEL_PREFIX + name, value)
    # anything else (a module's get_extra_state()) is described in the metadata
    values = {name: _encode(value, MODEL_PREFIX + name, arrays)
              for name, value in state.items() if not isinstance(value, np.ndarray)}
    config = getattr(model, "config", None)
    float_dtypes = {str(v.dtype) for v in state.values()
                    if isinstance(v, np.ndarray) and v.dtype.kind == "f"}
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": {
            "class": None if model is None else type(model).__name__,
            "config_name": getattr(model, "config_name", None),
            "config": dict(config) if config is not None else None,
            "keys": list(state),
            "dtype": float_dtypes.pop() if len(float_dtypes) == 1 else None,
            **({"values": values} if values else {}),
            **({"dict_only": True} if model is None else {}),
            **(_rebuild_recipe(model) if model is not None and config is None else {}),
            **(_modes_record(model) if model is not None and config is not None else {}),
        },
        "optimizer": None,
        "random_state": _random_state(),
        **_extra_record(extra, arrays),
    }
    _dumps(meta["model"]["config"], "the model's config")
    if optimizer is not None:
        if not hasattr(optimizer, "state_dict"):
            raise TypeError(f"fastnn.save: expected an Optimizer, got "
                            f"{type(optimizer).__name__}")
        osd = optimizer.state_dict()
        steps = {}
        for index, entry in osd["state"].items():
            names = [k for k, v in entry.items() if k != "step" and isinstance(v, np.ndarray)]
            saved = {"arrays": names}
            step = entry.get("step")
            int_step = isinstance(step, (int, np.integer)) and not isinstance(step, bool)
            if int_step:
                saved["step"] = int(step)
            # anything else (LBFGS's counters, scalars and lists of arrays, a step that is
            # not an int, as a user's subclass may keep) by _encode
            others = {k: v for k, v in entry.items()
                      if k not in names and not (k == "step" and int_step)}
            if others:
                saved["values"] = {k: _encode(v, f"{OPTIMIZER_PREFIX}{index}/{k}", arrays)
                                   for k, v in others.items()}
            steps[str(index)] = saved
            for name in names:
                arrays[f"{OPTIMIZER_PREFIX}{index}/{name}"] = entry[name]
        meta["optimizer"] = {"type": osd.get("type", type(optimizer).__name__),
                             "param_groups": osd["param_groups"], "state": steps,
                             **_groups_record(osd["param_groups"], arrays)}
    return meta, arrays


def _groups_record(groups, arrays):
    """{"param_groups_value": the _encode description of the optimizer's param groups},
    which load gives back as they were (a list a user keeps in a group stays a list, a
    NumPy scalar its type; the metadata's JSON "param_groups" turned tuples and lists
    alike into lists), or {} for groups _encode cannot describe (JSON alone then, as
    before); their arrays join ``arrays`` under OPTIMIZER_PREFIX + "param_groups"."""
    own = {}
    try:
        value = _encode(groups, OPTIMIZER_PREFIX + "param_groups", own)
        json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        return {}
    arrays.update(own)
    return {"param_groups_value": value}


def _add_array(arrays, key, value):
    """arrays[key] = value, refusing what the .npz file could not give back as it was:
    an object array (never loadable without pickle), a member name taken already (the
    key 'a/b' and the key 'b' of a dict under 'a') or ending in '.npy' (NumPy's reader
    takes 'w.npy' for the member of 'w')."""
    if value.dtype.hasobject:
        raise TypeError(f"fastnn.save: cannot store an array of Python objects (at "
                        f"{key}); convert it, e.g. to a list of strings")
    if key in arrays:
        raise ValueError(f"fastnn.save: two arrays would be stored as {key!r} (a key "
                         f"'a/b' and the key 'b' of a dict under 'a' are one name in the "
                         f"file); rename one (no '/' in keys)")
    if key.endswith(".npy"):
        raise ValueError(f"fastnn.save: the key {key!r} ends in '.npy', which the .npz "
                         f"reader takes for the array stored without it; rename it")
    arrays[key] = value


def _host_value(value):
    """A Parameter's values and a device array (a GPU model's state_dict(keep_vars=True)
    buffers, its parameters' .data) as a NumPy copy, as torch.save stores a CUDA
    tensor's values; anything else as it is."""
    if isinstance(value, nn.Parameter):
        value = value.data
    return _device.host_copy(value) if _device.is_device_array(value) else value


def _encode(value, key, arrays):
    """A JSON description of a state value that is not one array (optimizer counters, a
    module's extra state): None, a string, a number (with its NumPy dtype, so a float32
    scalar comes back float32), or a list, tuple or string-keyed dict of such values and
    arrays (the arrays go to ``arrays`` under key/<i> or key/<name>; Parameters and
    device arrays as NumPy copies)."""
    value = _host_value(value)
    if value is None:
        return None
    if isinstance(value, str):
        return {"string": value}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"dict": {k: _encode(v, f"{key}/{k}", arrays) for k, v in value.items()}}
    if isinstance(value, dict) and all(isinstance(k, (str, int)) and not isinstance(k, bool)
                                       for k in value):
        # an optimizer state dict's "state" (parameter positions as keys): key, value pairs
        return {"items": [[k, _encode(v, f"{key}/{k}", arrays)] for k, v in value.items()]}
    if isinstance(value, np.ndarray):
        _add_array(arrays, key, value)
        return {"array": key}
    if isinstance(value, (list, tuple)):
        kind = "tuple" if isinstance(value, tuple) else "list"  # each comes back as it was
        return {kind: [_encode(v, f"{key}/{i}", arrays) for i, v in enumerate(value)]}
    if isinstance(value, (bool, int, float, np.generic)):
        number = np.asarray(value)
        return {"number": number.item(), "dtype": None if isinstance(value, (bool, int, float))
                else number.dtype.str}
    raise TypeError(f"fastnn.save: cannot store state of type {type(value).__name__} "
                    f"(at {key})")


def _extra_record(extra, arrays):
    """The metadata's record of save's extra: "extra", its JSON form (what metadata
    readers show; None when it holds a larger array), and "extra_value", its _encode
    description, which load_checkpoint gives back: as it was saved, where JSON turned
    int keys into strings, tuples into lists and NumPy scalars into Python numbers. A
    value _encode cannot describe (a dict with float keys) is kept as JSON alone, as
    before; its arrays join ``arrays`` under EXTRA_KEY."""
    own = {}
    try:
        value = _encode(extra, EXTRA_KEY, own)
        json.dumps(value)   # (a complex or datetime64 scalar has no JSON number)
    except (TypeError, ValueError, RecursionError):
        # (keys the .npz cannot hold apart, 'a/b' beside 'a': {'b'}, or ending '.npy';
        # a value that holds itself, which JSON then names)
        value, own = None, {}
    try:
        plain = json.loads(_dumps(extra, "extra"))
    except TypeError:
        if value is None:   # (neither can store it)
            raise
        plain = None
    arrays.update(own)
    return {"extra": plain, **({"extra_value": value} if value is not None else {})}


def _extra(meta, arrays):
    """The extra value save stored (see _extra_record; files before it: its JSON)."""
    if "extra_value" in meta:
        return _decode(meta["extra_value"], arrays)
    return meta.get("extra")


def _arrays_described(desc):
    """The array keys an _encode description refers to."""
    if isinstance(desc, dict):
        if "array" in desc:
            yield desc["array"]
        for key in ("list", "tuple"):
            for d in desc.get(key, ()):
                yield from _arrays_described(d)
        for d in desc.get("dict", {}).values():
            yield from _arrays_described(d)
        for _, d in desc.get("items", ()):
            yield from _arrays_described(d)


def _decode(desc, arrays):
    """The value _encode described."""
    if desc is None:
        return None
    if "array" in desc:
        return arrays[desc["array"]]
    if "list" in desc:
        return [_decode(d, arrays) for d in desc["list"]]
    if "tuple" in desc:
        return tuple(_decode(d, arrays) for d in desc["tuple"])
    if "dict" in desc:
        return {k: _decode(d, arrays) for k, d in desc["dict"].items()}
    if "items" in desc:
        return {k: _decode(d, arrays) for k, d in desc["items"]}
    if "string" in desc:
        return desc["string"]
    return desc["number"] if desc["dtype"] is None else np.dtype(desc["dtype"]).type(
        desc["number"])


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and value.size <= 64:
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _dumps(value, what):
    try:
        return json.dumps(value, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"fastnn.save: {what} must be JSON-serialisable: {exc}") from None


def _random_state():
    from . import random
    return random.generator().bit_generator.state


# ------------------------------------------------- rebuilding fastnn.nn layer trees
#: containers rebuilt from their children (the others from their constructor arguments)
_CONTAINERS = ("Sequential", "ModuleList", "ModuleDict")


class _NotRebuildable(Exception):
    """Why a model cannot be rebuilt by load(path) alone (the message says)."""


def _where(path):
    return f"'{path}'" if path else "the model"


def _fastnn_nn_class(cls):
    """cls's name when cls is a public fastnn.nn Module class, else None."""
    name = cls.__name__
    return name if name in nn.__all__ and getattr(nn, name, None) is cls else None


def _plain_attrs(module):
    """A module's public attributes with plain values (numbers, strings, dtypes, tuples
    of them), in plain_values' form: what its constructor arguments set, compared on
    load with the rebuilt module's so a change made after construction is noticed."""
    # (state dict entries, such as a norm layer's num_batches_tracked, are not compared)
    skip = {"training", *module._parameters, *module._buffers, *module._modules,
            *(key for key in module.state_dict(keep_vars=True) if "." not in key)}
    attrs = {}
    for name, value in module.__dict__.items():
        if name.startswith("_") or name in skip:
            continue
        try:
            attrs[name] = plain_values.encode(value)
        except plain_values.NotPlain:
            pass
    return attrs


def _init_record(module):
    """(args, kwargs) of the module's constructor call in plain_values' form."""
    init = module.__dict__.get("_init_args")
    if init is None and type(module).__init__ is Module.__init__:
        return [], {}  # (a layer with Module's own __init__, which takes no arguments)
    if init is None or init[0] is not type(module):
        raise _NotRebuildable("was not made by its own class's constructor (built before "
                              "fastnn recorded constructor arguments, or its class changed)")
    cls, args, kwargs = init
    if args is None:  # (the constructor was given something else: kwargs says what)
        raise _NotRebuildable(f"has a constructor argument that is {kwargs}, not a "
                              f"number, string, tuple or dtype")
    return args, kwargs


def _recipe_node(module, path):
    """The rebuild recipe of module: a container's class and children, or a layer's class,
    constructor arguments and float dtype."""
    name = _fastnn_nn_class(type(module))
    if name is None:
        cls = type(module)
        raise _NotRebuildable(f"{_where(path)} is a {cls.__module__}.{cls.__qualname__}, "
                              f"not one of fastnn.nn's layers")
    if name in _CONTAINERS:
        names = list(module._modules)
        if name == "ModuleList" and names != [str(i) for i in range(len(names))]:
            raise _NotRebuildable(f"{_where(path)}: a ModuleList whose children are named "
                                  f"{names}, not by their positions")
        children = []
        for key, child in module._modules.items():
            sub = f"{path}.{key}" if path else key
            if child is None:
                raise _NotRebuildable(f"{_where(sub)} is None")
            children.append([key, _recipe_node(child, sub)])
        return {"class": name, "children": children}
    try:
        args, kwargs = _init_record(module)
    except _NotRebuildable as exc:
        raise _NotRebuildable(f"{_where(path)} ({name}) {exc}") from None
    dtypes = {str(v.dtype) for v in (getattr(v, "data", v) for v in
                                     module.state_dict(keep_vars=True).values())
              if hasattr(v, "dtype") and v.dtype.kind == "f"}
    if len(dtypes) > 1:
        raise _NotRebuildable(f"{_where(path)} ({name}) mixes float dtypes {sorted(dtypes)}")
    lazy_dtype = module.__dict__.get("_lazy_dtype")
    if not dtypes and lazy_dtype is not None:
        # a lazy layer no input has reached: no arrays yet, but the dtype its parameters
        # will take (a .double() model's came back float32 and refused float64 input)
        dtypes = {str(np.dtype(lazy_dtype))}
    return {"class": name, "args": args, "kwargs": kwargs,
            "dtype": dtypes.pop() if dtypes else None}


def _rebuild_recipe(model):
    """{"rebuild": recipe} for a model that is a tree of fastnn.nn's layers built by
    their constructors, or {"not_rebuildable": why} (load then needs model=).

    The recipe: "tree" (_recipe_node's nested nodes), "modules" (for every module, by
    its dotted path: class, training flag, plain attributes and encoded constructor
    arguments, which load compares with the rebuilt model's) and "frozen" (the
    parameters with requires_grad False). No code and no pickle: load looks class names
    up among fastnn.nn's public names only."""
    try:
        if not hasattr(model, "named_modules") or not hasattr(model, "_modules"):
            raise _NotRebuildable(f"a {type(model).__name__} is not a fastnn Module")
        modules = list(model.named_modules(remove_duplicate=False))
        seen = {}
        for path, module in modules:
            if id(module) in seen:
                raise _NotRebuildable(f"one module is held twice (at {_where(seen[id(module)])}"
                                      f" and {_where(path)})")
            seen[id(module)] = path
        params = {}
        # (lazy_ok: a lazy layer before its first input has no parameters yet, and its
        # state dict is empty; it saves and rebuilds as the lazy layer, as torch.save's)
        for path, param in model._named_parameters(remove_duplicate=False):
            if id(param) in params:
                raise _NotRebuildable(f"parameters {params[id(param)]!r} and {path!r} are "
                                      f"shared (the same Parameter)")
            params[id(param)] = path
        tree = _recipe_node(model, "")
        checks = _module_checks(model)
        frozen = [path for path, param in model._named_parameters()
                  if not param.requires_grad]
    except _NotRebuildable as exc:
        return {"not_rebuildable": str(exc)}
    return {"rebuild": {"tree": tree, "modules": checks, "frozen": frozen}}


def _module_checks(model):
    """For every module, by its dotted path: [path, class name, training flag, plain
    attributes, encoded constructor arguments or None], which load compares with the
    rebuilt model's (``_rebuilt_problems``)."""
    checks = []
    for path, module in model.named_modules(remove_duplicate=False):
        try:
            init = _init_record(module)
        except _NotRebuildable:
            init = None
        checks.append([path, type(module).__name__, bool(module.training),
                       _plain_attrs(module), init])
    return checks


def _rebuilt_problems(model, checks, keys):
    """How a rebuilt model differs from the saved one's _module_checks and state keys
    (a list of sentences; empty when it does not). keys None: not compared (the state's
    own check, _model_state, takes files without the norm layers' batch counters)."""
    saved = {entry[0]: entry for entry in checks}
    built = list(model.named_modules(remove_duplicate=False))
    problems = []
    if [p for p, _ in built] != list(saved):
        problems.append(f"its modules are {list(saved)} in the file but "
                        f"{[p for p, _ in built]} when rebuilt")
    for where, module in ([] if problems else built):
        _, name, training, attrs, init = saved[where]
        if type(module).__name__ != name:
            problems.append(f"{_where(where)} is a {name} in the file but a "
                            f"{type(module).__name__} when rebuilt")
            continue
        now = _plain_attrs(module)
        for key in sorted(set(attrs) | set(now)):
            if json.dumps(attrs.get(key), sort_keys=True) != json.dumps(now.get(key),
                                                                      sort_keys=True):
                problems.append(
                    f"{_where(where)} ({name}) has {key}="
                    f"{plain_values.decode(attrs[key]) if key in attrs else '(none)'!r} "
                    f"in the saved model but "
                    f"{plain_values.decode(now[key]) if key in now else '(none)'!r} when "
                    f"rebuilt from its constructor arguments")
        if init is not None and name not in _CONTAINERS:
            try:
                rebuilt_init = list(_init_record(module))
            except _NotRebuildable:
                rebuilt_init = None
            if json.dumps(rebuilt_init, sort_keys=True) != json.dumps(init, sort_keys=True):
                problems.append(f"{_where(where)} ({name}) was built with other constructor "
                                f"arguments than its parent makes (a replaced child?)")
    if not problems and keys is not None:
        live = list(model.state_dict())
        if live != list(keys):
            problems.append(f"its state keys are {list(keys)} in the file but {live} when "
                            f"rebuilt")
    return problems


def _modes_record(model):
    """{"modes": {dotted path: training flag}, "frozen": [parameters with requires_grad
    False]} of a model rebuilt from its config (fastnn.models), which load restores as
    torch.load restores a pickled model's."""
    return {"modes": {where: bool(module.training)
                      for where, module in model.named_modules(remove_duplicate=False)},
            "frozen": [name for name, param in model.named_parameters()
                       if not param.requires_grad],
            # (its modules as saved: a layer changed or replaced after construction, which
            # the config does not say, is refused on load instead of coming back as built)
            "modules": _module_checks(model)}


def _restore_modes(model, modes, frozen):
    """Set each module's training flag from modes (by dotted path; a path the model
    lacks is skipped) and requires_grad False on the parameters named in frozen."""
    for where, module in model.named_modules(remove_duplicate=False):
        if where in modes:
            object.__setattr__(module, "training", bool(modes[where]))
    frozen = set(frozen)
    for name, param in model._named_parameters():    # (a lazy layer: none yet)
        if name in frozen:
            param.requires_grad = False


def _build_node(node, path, where):
    """A fresh module from a recipe node (class names looked up in fastnn.nn only)."""
    if not isinstance(node, dict) or not isinstance(node.get("class"), str):
        raise CheckpointError(f"{path}: damaged rebuild recipe at {_where(where)}")
    name = node["class"]
    cls = getattr(nn, name, None) if name in nn.__all__ else None
    if not (isinstance(cls, type) and issubclass(cls, Module)):
        raise CheckpointError(f"{path}: cannot rebuild {_where(where)}: {name!r} is not one "
                              f"of fastnn.nn's layers; pass model=")
    try:
        if name in _CONTAINERS:
            children = collections.OrderedDict(
                (key, _build_node(child, path, f"{where}.{key}" if where else key))
                for key, child in node["children"])
            return cls(list(children.values())) if name == "ModuleList" else cls(children)
        module = cls(*[plain_values.decode(a) for a in node["args"]],
                     **{k: plain_values.decode(v) for k, v in node["kwargs"].items()})
        if node.get("dtype") in ("float32", "float64"):
            module.to_dtype(node["dtype"])
        return module
    except CheckpointError:
        raise
    except Exception as exc:  # the layer refused its arguments (another fastnn version?)
        raise CheckpointError(f"{path}: cannot rebuild {_where(where)} ({name}) from its "
                              f"recorded constructor arguments: {exc}; pass model=") from None


def _rebuild(meta, path):
    """The model of a checkpoint with a rebuild recipe, checked against what was saved
    (modules, plain attributes, state keys and shapes), in its saved training modes,
    requires_grad flags and dtypes, on the CPU."""
    recipe = meta["model"]["rebuild"]
    model = _build_node(recipe.get("tree"), path, "")   # (build_model keeps the generator)
    checks = recipe.get("modules", [])
    saved = {entry[0]: entry for entry in checks}
    problems = _rebuilt_problems(model, checks, meta["model"]["keys"])
    if problems:
        raise CheckpointError(f"{path}: the checkpoint's model ({meta['model'].get('class')}) "
                              f"cannot be rebuilt from fastnn.nn layers and their constructor "
                              f"arguments (changed after construction?): "
                              f"{'; '.join(problems[:3])}; pass model=")
    _restore_modes(model, {where: entry[2] for where, entry in saved.items()},
                   recipe.get("frozen", []))
    return model


def _write_atomically(path, arrays):
    """Write arrays as .npz through write_atomically, durably (fsync)."""
    if not is_special_file(path):
        real = os.path.realpath(path)
        folder = os.path.dirname(real)
        # said up front: otherwise the error would name the temporary file
        if not os.path.isdir(folder):
            raise FileNotFoundError(errno.ENOENT, "fastnn.save: no such folder", folder)
        if os.path.isdir(real):
            raise IsADirectoryError(errno.EISDIR, "fastnn.save: the path is a folder", real)
    write_atomically(path, lambda f: np.savez(f, **arrays), durable=True)


def write_atomically(path, write, text=False, durable=False):
    """Call write(f) on a file object so that the file path names ends up whole or not
    at all: f is a temporary file beside it, given the mode open() would give
    (file_mode), then renamed over it; through a symbolic link the file it names is
    replaced and the link stays (as torch.save's open() writes through it). The
    temporary file is removed on any failure (a full disk, an interrupt). A device or
    FIFO is written in place. text: f takes str; durable: the file and then its folder
    are fsynced (checkpoints). Shared by fastnn.save, the CLI's metrics JSON and
    plotting.save_figure."""
    mode = "w" if text else "wb"
    if is_special_file(path):
        with open(path, mode) as f:
            write(f)
        return
    path = os.path.realpath(path)
    folder = os.path.dirname(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                                   dir=folder)
    except OSError as exc:   # (its message named the temporary file, not the cause)
        what = (f"replace {path!r} (by a new file renamed over it)"
                if os.path.exists(path) else f"write {path!r}")
        raise OSError(exc.errno, f"cannot {what}: {not_creatable(exc, folder)}") from None
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, file_mode(path))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if durable:
        _fsync_folder(folder)


def not_creatable(exc, folder):
    """Why a file or folder could not be created in folder, from the OSError that said so
    (whose filename, the new entry's path, names the folder where one was made on the
    way), in words: 'nothing can be created in FOLDER (WHY)', WHY its strerror
    (Permission denied, Read-only file system, No space left on device), but for ENOENT
    in a folder that exists, which /proc and /sys answer, what it means there (it said
    'No such file or directory', naming a temporary file)."""
    folder = os.path.dirname(exc.filename) if exc.filename else folder
    if exc.errno == errno.ENOENT and os.path.isdir(folder):
        why = "its file system does not allow it"
    else:
        why = exc.strerror or str(exc)
    return f"nothing can be created in {folder!r} ({why})"


def is_special_file(path):
    """True for an existing path that is neither a regular file nor a folder (a device
    such as /dev/stdout, a FIFO): written in place, never replaced by a new file."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def make_parent_folder(path):
    """Create the folder the file ``path`` is written into: through a symbolic link, the
    folder of the file it names (which open() writes); nothing for a device or FIFO."""
    if not is_special_file(path):
        os.makedirs(os.path.dirname(os.path.realpath(path)), exist_ok=True)


def file_mode(path):
    """The mode for a file written to a temporary name and renamed to path (mkstemp
    makes it 0600): an existing file's permissions, kept; otherwise what open() would
    give (0666 less the umask)."""
    try:
        return os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        return 0o666 & ~_umask()


def _umask():
    """The process umask, read without changing it where Linux allows (thread-safe)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    umask = os.umask(0o022)  # elsewhere: the classic set-and-restore
    os.umask(umask)
    return umask


def _fsync_folder(folder):
    """Make the rename durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------- loading
def _label(path):
    """How messages name path: the path, or a file object's name."""
    if callable(getattr(path, "read", None)):
        return str(getattr(path, "name", "the file object"))
    return os.fspath(path)


def read_checkpoint(path):
    """(metadata dict, {key: array}) of a checkpoint file (a path, or a binary file object
    open for reading at the checkpoint's start); CheckpointError if it is not one."""
    source = path if callable(getattr(path, "read", None)) else os.fspath(path)
    path = _label(source)
    _check_zip_magic(source, path)
    start = None if isinstance(source, str) else source.tell()
    try:
        npz = np.load(source, allow_pickle=False)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception as exc:  # any unreadable content means "not a checkpoint"
        raise CheckpointError(f"{path} is not a fastnn checkpoint (not a readable .npz: "
                              f"{exc})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise CheckpointError(f"{path} is not a fastnn checkpoint (a single .npy array, "
                              f"not an .npz archive)")
    if start is not None and min((info.header_offset for info in npz.zip.infolist()),
                                 default=start) != start:
        # (a zip archive is read from its end: that of the last archive in the stream)
        npz.close()
        raise CheckpointError(f"{path}: more follows the checkpoint at the file object's "
                              f"position {start} (another checkpoint written after it?), "
                              f"and an .npz archive is read from the end of the file: "
                              f"give each checkpoint a file object of its own")
    with npz:
        if META_KEY not in npz.files:
            if any(name.rsplit("/", 1)[-1] == "data.pkl" for name in npz.zip.namelist()):
                # (torch.save's zip archive: a pickle, which fastnn never unpickles)
                raise CheckpointError(f"{path} is not a fastnn checkpoint: {_TORCH_FILE}")
            raise CheckpointError(f"{path} is not a fastnn checkpoint (an .npz without "
                                  f"{META_KEY!r}; written by numpy.savez, not fastnn.save?)")
        try:
            arrays = {key: npz[key] for key in npz.files}
        except MemoryError:
            raise
        except Exception as exc:  # zipfile and numpy's header parser raise many kinds
            # (a flipped bit: NotImplementedError for a compression method, tokenize's
            # TokenError for an array header)
            raise CheckpointError(f"{path}: damaged fastnn checkpoint "
                                  f"({type(exc).__name__}: {exc})") from None
    meta = _parse_meta(path, arrays.pop(META_KEY))
    _check_complete(path, meta, arrays)
    return meta, arrays


# What to do with a file torch.save wrote, which fastnn.load does not unpickle.
_TORCH_FILE = ("a file written by torch.save holds pickles, which fastnn never loads: "
               "read it with torch.load and pass its state dict to load_state_dict "
               "(torch tensors load as they are)")


def _check_zip_magic(source, path):
    """CheckpointError for a file (path, or an open file object) that is not a zip
    archive (np.load would call any other file a pickle and suggest allow_pickle, which
    a checkpoint never needs)."""
    if isinstance(source, str):
        with open(source, "rb") as f:
            head = f.read(4)
    else:
        start = source.tell()
        head = source.read(4)
        source.seek(start)
    if head not in (b"PK\x03\x04", b"PK\x05\x06") and not head.startswith(b"\x93NUM"):
        if head[:1] == b"\x80":   # a pickle's PROTO opcode: torch.save's legacy format
            raise CheckpointError(f"{path} is not a fastnn checkpoint (a pickle: "
                                  f"torch.save's legacy format?): {_TORCH_FILE}")
        raise CheckpointError(f"{path} is not a fastnn checkpoint (not an .npz archive: it "
                              f"starts with {head!r})")


def read_metadata(path):
    """The checkpoint's metadata (format version, model config, optimizer, extra)."""
    return read_checkpoint(path)[0]


def _parse_meta(path, raw):
    try:
        meta = json.loads(str(raw[()]))
    except (ValueError, TypeError, IndexError) as exc:
        raise CheckpointError(f"{path}: unreadable checkpoint metadata ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a fastnn checkpoint (unknown format "
                              f"{meta.get('format') if isinstance(meta, dict) else meta!r})")
    version = meta.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{path}: bad checkpoint format version {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {version} is newer than "
                              f"this fastnn reads ({FORMAT_VERSION}); upgrade fastnn")
    model = meta.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("keys"), list):
        raise CheckpointError(f"{path}: checkpoint metadata lacks the model's state keys")
    return meta


def _check_complete(path, meta, arrays):
    described = meta["model"].get("values", {})
    wanted = [MODEL_PREFIX + k for k in meta["model"]["keys"] if k not in described]
    opt = meta.get("optimizer")
    if opt is not None:
        for index, entry in opt.get("state", {}).items():
            wanted += [f"{OPTIMIZER_PREFIX}{index}/{name}" for name in entry.get("arrays", [])]
        wanted += list(_arrays_described(opt.get("param_groups_value")))
    wanted += list(_arrays_described(meta.get("extra_value")))
    missing = [k for k in wanted if k not in arrays]
    if missing:
        raise CheckpointError(f"{path}: damaged fastnn checkpoint, arrays missing: {missing}")


def build_model(meta, path="checkpoint"):
    """A fresh model from the metadata's config_name and config (fastnn.models registry),
    or a tree of fastnn.nn layers; fastnn's random generator (which the layers'
    initialisation draws from) is left as it was, as torch.load leaves PyTorch's."""
    from . import random
    state = random.get_state()
    try:
        return _build_model(meta, path)
    finally:
        random.set_state(state)


def _build_model(meta, path):
    info = meta["model"]
    if info.get("dict_only"):
        raise CheckpointError(f"{path} holds a dict written by fastnn.save(dict, path), not a "
                              f"model: fastnn.load(path) returns it (or pass model=)")
    name, config = info.get("config_name"), info.get("config")
    if (name is None or config is None) and isinstance(info.get("rebuild"), dict):
        return _rebuild(meta, path)
    if name is None or config is None:
        why = info.get("not_rebuildable")
        why = (f", and it cannot be rebuilt from fastnn.nn layers: {why}" if why else "")
        raise CheckpointError(f"{path}: the checkpoint's model ({info.get('class')}) has no "
                              f"config_name/config to rebuild it from{why}; pass model=")
    class_name = MODEL_REGISTRY.get(name)
    if class_name is None:
        raise CheckpointError(f"{path}: unknown model config_name {name!r}; known: "
                              f"{sorted(MODEL_REGISTRY)}")
    models = importlib.import_module("fastnn.models")
    cls = getattr(models, class_name, None)
    if cls is None:
        raise CheckpointError(f"{path}: fastnn.models has no {class_name} (config_name "
                              f"{name!r}) in this version")
    model = cls(**config)
    dtype = info.get("dtype")
    if dtype in ("float32", "float64") and hasattr(model, "to_dtype"):
        model.to_dtype(dtype)
    checks = info.get("modules")   # (files written before these were recorded: none)
    problems = _rebuilt_problems(model, checks, None) if isinstance(checks, list) else []
    if problems:
        raise CheckpointError(f"{path}: the checkpoint's model ({info.get('class')}) differs "
                              f"from {class_name}(**config) (changed after construction?): "
                              f"{'; '.join(problems[:3])}; pass model=")
    # training modes and frozen parameters as saved (checkpoints before these were
    # recorded load in training mode, every parameter trainable, as they always did)
    modes, frozen = info.get("modes"), info.get("frozen", [])
    if isinstance(modes, dict) and isinstance(frozen, list):
        _restore_modes(model, modes, frozen)
    return model


def _model_state(path, meta, arrays, model):
    """The checkpoint's model state, checked against model and cast to its dtypes."""
    described = meta["model"].get("values", {})
    saved = collections.OrderedDict(
        (k, _decode(described[k], arrays) if k in described else arrays[MODEL_PREFIX + k])
        for k in meta["model"]["keys"])
    _make_lazy_layers(model, saved)
    live = model.state_dict()
    # A file written before state dicts carried the norm layers' batch counter loads
    # without it: load_state_dict then leaves the counters as they are.
    missing = [k for k in live if k not in saved and not _batch_count_key(k, live)]
    unexpected = [k for k in saved if k not in live]
    if missing or unexpected:
        raise CheckpointError(f"{path}: the checkpoint does not fit {type(model).__name__}: "
                              f"missing keys {missing}, unexpected keys {unexpected}")
    state = collections.OrderedDict()
    for name, target in live.items():
        if name not in saved:
            continue
        value = saved[name]
        if not isinstance(target, np.ndarray) or not isinstance(value, np.ndarray):
            state[name] = value   # extra state: the module's set_extra_state checks it
            continue
        if value.shape != target.shape:
            raise CheckpointError(f"{path}: the checkpoint does not fit "
                                  f"{type(model).__name__}: {name!r} has shape {value.shape} "
                                  f"in the file but {target.shape} in the model")
        if value.dtype != target.dtype:
            if value.dtype.kind != target.dtype.kind:
                raise CheckpointError(f"{path}: {name!r} is {value.dtype} in the file but "
                                      f"{target.dtype} in the model")
            value = value.astype(target.dtype)
        state[name] = value
    return state


def _make_lazy_layers(model, saved):
    """Give model's lazy layers that have not seen an input their sizes from the saved
    arrays, as load_state_dict does (PyTorch's lazy layers take them from a state dict)."""
    for prefix, module in model._all_modules(""):
        if "_lazy" in module.__dict__:
            module._lazy_from_state(saved, prefix)


def _batch_count_key(name, live):
    """True for a norm layer's num_batches_tracked entry of state_dict (a 0-d integer
    array), which checkpoints written before fastnn saved it lack."""
    value = live[name]
    return (name.rpartition(".")[2] == "num_batches_tracked" and isinstance(value, np.ndarray)
            and value.ndim == 0 and value.dtype.kind in "iu")


def _optimizer_state(path, meta, arrays, optimizer):
    opt = meta.get("optimizer")
    if opt is None:
        raise CheckpointError(f"{path}: the checkpoint holds no optimizer state")
    state = {}
    for index, entry in opt.get("state", {}).items():
        state[index] = {**({"step": entry["step"]} if "step" in entry else {}),
                        **{name: arrays[f"{OPTIMIZER_PREFIX}{index}/{name}"]
                           for name in entry.get("arrays", [])},
                        **{name: _decode(desc, arrays)
                           for name, desc in entry.get("values", {}).items()}}
    _scalars_as_saved(optimizer, state)
    groups = opt.get("param_groups")
    if "param_groups_value" in opt:   # (as saved; files before it: the JSON groups)
        groups = _decode(opt["param_groups_value"], arrays)
    elif isinstance(groups, list):   # (JSON made the groups' tuples, betas=(0.9, 0.999), lists)
        groups = [{k: (tuple(v) if isinstance(v, list) and k not in ("params", "param_names")
                       else v) for k, v in g.items()} if isinstance(g, dict) else g
                  for g in groups]
    osd = {"type": opt.get("type"), "param_groups": groups, "state": state}
    try:
        optimizer.validate_state_dict(osd)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: the checkpoint's optimizer state does not fit: "
                              f"{exc}") from None
    return osd


def _scalars_as_saved(optimizer, state):
    """Give fastnn's optimizers their one-number states (NAdam's mu_product, ASGD's eta
    and mu) saved as float32 0-d arrays for parameters of another dtype as numbers: the
    optimizer made them in float32 (PyTorch's default dtype) and rounds them so until a
    load_state_dict casts an array to the parameter's dtype, as PyTorch's does; a number
    keeps the float32 rounding, so a float64 run goes on bit for bit as it would have.
    (A state saved in the parameter's dtype, as after loading PyTorch's, stays an array.)"""
    names = getattr(optimizer, "_scalar_state", None)
    if not names:
        return
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for index, entry in state.items():
        position = int(index) if str(index).isdigit() else -1
        if not 0 <= position < len(params) or not isinstance(entry, dict):
            continue   # (validate_state_dict says what is wrong)
        for name in names:
            value = entry.get(name)
            if (isinstance(value, np.ndarray) and value.ndim == 0
                    and value.dtype == np.float32 and params[position].dtype != np.float32):
                entry[name] = float(value)


def _check_random_state(path, state):
    from . import random
    kind = random.generator().bit_generator.state["bit_generator"]
    if not isinstance(state, dict) or state.get("bit_generator") != kind:
        raise CheckpointError(f"{path}: the checkpoint holds no {kind} random generator state")


def load_checkpoint(path, model=None, optimizer=None, restore_random=False):
    """Load a checkpoint: Checkpoint(model, optimizer, extra, format_version).

    model: a Module to load into, or None to rebuild one from the file's config;
    optimizer: an Optimizer over the model's parameters to load into, or None;
    restore_random: also restore fastnn's global random generator (dropout masks) to its
    state at save time, for an exact resume. Raises CheckpointError (nothing changed)
    when the file is not a checkpoint or does not fit the model or optimizer. The norm
    layers' num_batches_tracked is the one state entry a file may lack (checkpoints
    written before fastnn saved it): those layers keep their counts (0 in a rebuilt
    model), as load_state_dict does with such a state dict. Lazy layers of model that
    have not seen an input take their sizes from the file first, as load_state_dict's.
    """
    return _load_read(_label(path), *read_checkpoint(path), model, optimizer, restore_random)


def _load_read(path, meta, arrays, model, optimizer, restore_random):
    """load_checkpoint on a file read_checkpoint has read: (meta, arrays)."""
    rebuilt = model is None and isinstance(meta["model"].get("rebuild"), dict)
    if model is None:
        model = build_model(meta, path)
    try:
        model_state = _model_state(path, meta, arrays, model)
    except CheckpointError as exc:
        if not rebuilt:
            raise
        raise CheckpointError(f"{exc} (the model rebuilt from its fastnn.nn layers and "
                              f"their constructor arguments differs from the saved one: "
                              f"changed after construction?); pass model=") from None
    optimizer_state = (_optimizer_state(path, meta, arrays, optimizer)
                       if optimizer is not None else None)
    random_state = meta.get("random_state") if restore_random else None
    if restore_random:
        _check_random_state(path, random_state)
    # _model_state checked the names; a lazy layer saved before its first input has
    # none in the file and stays lazy, which strict=True would call missing keys
    unmade = any("_lazy" in module.__dict__ for _, module in model._all_modules(""))
    model.load_state_dict(model_state, strict=not unmade)
    if optimizer is not None:
        optimizer.load_state_dict(optimizer_state)
    if random_state is not None:
        from . import random
        random.generator().bit_generator.state = random_state
    return Checkpoint(model, optimizer, _extra(meta, arrays), meta["format_version"])


def load(path, model=None, optimizer=None, restore_random=False, *, weights_only=None,
         map_location=None):
    """Load a checkpoint and return the model (rebuilt from its config when None).

    See ``load_checkpoint`` for the arguments and for getting ``extra`` back. A file
    written by ``save(state_dict, path)`` gives that dict back when model is None
    (PyTorch's ``model.load_state_dict(torch.load(path))``). ``weights_only`` and
    ``map_location`` are accepted for PyTorch code: no file is ever unpickled, and the
    arrays are NumPy arrays that ``load_state_dict`` puts on the module's device. A
    rebuilt model (model None) comes back on the CPU, or on ``map_location`` when that
    names a device ('cpu', 'cuda', 'cuda:0', a torch.device): ``load(path,
    map_location='cuda')`` gives a GPU model. A model passed in stays on its device, and
    a saved dict comes back as NumPy arrays, whatever map_location says (a dict or a
    function there changes nothing).
    """
    device = None
    if model is None and (isinstance(map_location, str)
                          or type(map_location).__name__ == "device"):
        device = _device.check_device("fastnn.load: map_location", map_location)
    meta, arrays = read_checkpoint(path)
    if model is None and optimizer is None and meta["model"].get("dict_only"):
        described = meta["model"].get("values", {})
        return collections.OrderedDict(
            (k, _decode(described[k], arrays) if k in described
             else arrays[MODEL_PREFIX + k]) for k in meta["model"]["keys"])
    loaded = _load_read(_label(path), meta, arrays, model, optimizer, restore_random).model
    return loaded if device is None or device == loaded.device else loaded.to(device)
