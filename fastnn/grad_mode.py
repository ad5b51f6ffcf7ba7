"""PyTorch's gradient-mode switches for code ported from it: ``no_grad``,
``enable_grad``, ``set_grad_enabled``, ``inference_mode`` and ``is_grad_enabled``.

fastnn keeps no autograd graph, so these change no forward result. What they change:
with gradients disabled no layer keeps what its explicit backward would read (its input,
mask, indices: ``nn.module.forget_forward``), and a ``Sequential`` on the host lends its
layers two output arrays it alternates (``nn.output_slots``) instead of a buffer each, so a
forward pass holds two intermediates at a time, as PyTorch's does; and a module whose last
forward ran with gradients disabled refuses ``backward`` (a RuntimeError, as PyTorch's
"does not require grad"), instead of differentiating an evaluation pass by mistake.
The mode is per thread, as PyTorch's; BatchNorm's running statistics and dropout follow
train()/eval(), not this mode, as in PyTorch. Each works as a context manager and as a
function decorator.
"""
import functools
import inspect
import threading


class _Mode(threading.local):
    enabled = True  # the class attribute is every new thread's starting value


_MODE = _Mode()


def is_grad_enabled():
    """True unless inside ``no_grad`` / ``set_grad_enabled(False)`` / ``inference_mode``
    in this thread."""
    return _MODE.enabled


class _GradModeContext:
    """Sets the mode to ``self._target`` inside the block (or the decorated call) and
    puts the previous mode back after it."""

    _target = True

    def __enter__(self):
        self._previous = _MODE.enabled
        _MODE.enabled = self._target
        return None

    def __exit__(self, *exc):
        _MODE.enabled = self._previous
        return False

    def __call__(self, fn):
        if not callable(fn):
            raise TypeError(f"{type(self).__name__}: expected a function to decorate, got "
                            f"{type(fn).__name__}")

        if inspect.isgeneratorfunction(fn):
            return self._wrap_generator(fn)

        @functools.wraps(fn)
        def run(*args, **kwargs):
            with self.clone():  # a context of its own for each call (calls may nest)
                return fn(*args, **kwargs)
        return run

    def _wrap_generator(self, fn):
        """A decorated generator function runs in the mode each time it resumes (its
        code runs then, not when called), and the caller's mode is back at each yield:
        PyTorch's decorators do the same."""

        @functools.wraps(fn)
        def run(*args, **kwargs):
            gen = fn(*args, **kwargs)
            try:
                with self.clone():
                    response = gen.send(None)
                while True:
                    try:
                        request = yield response
                    except GeneratorExit:
                        with self.clone():
                            gen.close()
                        raise
                    except BaseException as exc:  # thrown in by the caller: pass it on
                        with self.clone():
                            response = gen.throw(exc)
                    else:
                        with self.clone():
                            response = gen.send(request)
            except StopIteration as stop:
                return stop.value
        return run

    def clone(self):
        return type(self)()


class _NoArgumentContext(_GradModeContext):
    """A switch taking no argument, also usable as a bare decorator (``@no_grad``), as
    PyTorch's."""

    def __new__(cls, fn=None):
        if fn is None:
            return super().__new__(cls)
        return cls()(fn)


class no_grad(_NoArgumentContext):
    """Disable the gradient mode in the block: a module's backward after a forward run
    here raises a RuntimeError. ``with fastnn.no_grad(): logits = model(x)``."""

    _target = False


class enable_grad(_NoArgumentContext):
    """Enable the gradient mode in the block (inside a ``no_grad`` one, say)."""

    _target = True


class set_grad_enabled(_GradModeContext):
    """Set the gradient mode: at once when called (``set_grad_enabled(False)``), and back
    to the previous mode at the end of a ``with`` block or decorated call."""

    def __init__(self, mode):
        if not isinstance(mode, bool):
            raise TypeError(f"set_grad_enabled: expected a bool, got {type(mode).__name__}")
        self._previous = _MODE.enabled
        self._target = mode
        _MODE.enabled = mode

    def __enter__(self):
        _MODE.enabled = self._target  # the call set it already; a clone's __init__ too
        return None

    def __call__(self, fn):
        _MODE.enabled = self._previous  # as a decorator it sets the mode per call only
        return super().__call__(fn)

    def clone(self):
        return set_grad_enabled(self._target)


class inference_mode(_GradModeContext):
    """PyTorch's inference mode: gradients disabled in the block, as ``no_grad``;
    ``inference_mode(False)`` enables them there (PyTorch's guard sets the gradient mode
    to ``not mode``). Also a bare decorator (``@inference_mode``), as PyTorch's."""

    def __new__(cls, mode=True):
        if callable(mode) and not isinstance(mode, bool):
            return cls()(mode)
        return super().__new__(cls)

    def __init__(self, mode=True):
        if callable(mode) and not isinstance(mode, bool):
            return  # (the decorated function __new__ returned is not an instance)
        if not isinstance(mode, bool):
            raise TypeError(f"inference_mode: expected a bool, got {type(mode).__name__}")
        self._mode = mode
        self._target = not mode

    def clone(self):
        return inference_mode(self._mode)
