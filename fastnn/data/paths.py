"""Where dataset files are looked for and where downloads go."""
import os

SYSTEM_DATA_DIR = "/usr/share/datasets"


def cache_dir():
    """The download cache, ``~/.cache/fastnn`` (XDG_CACHE_HOME is respected)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "fastnn")


def user_path(path):
    """``path`` (a str or path-like) with a leading ``~`` expanded, as torchvision's
    datasets take their ``root``."""
    return os.path.expanduser(os.fspath(path))


def search_dirs(name, root=None):
    """Candidate directories for dataset ``name`` (e.g. 'fashion-mnist'), in search order.

    With ``root`` given, only ``root`` and ``root/name``. Otherwise ``$FASTNN_DATA``
    (and ``$FASTNN_DATA/name``), ``~/.cache/fastnn/name`` and
    ``/usr/share/datasets/name`` (where Debian's dataset packages install). A leading
    ``~`` in ``root`` or ``$FASTNN_DATA`` is the home directory.
    """
    if root is not None:
        root = user_path(root)
        return [root, os.path.join(root, name)]
    dirs = []
    env = os.environ.get("FASTNN_DATA")
    if env:
        env = user_path(env)
        dirs += [env, os.path.join(env, name)]
    dirs.append(os.path.join(cache_dir(), name))
    dirs.append(os.path.join(SYSTEM_DATA_DIR, name))
    return dirs
