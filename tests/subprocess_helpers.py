"""Run a snippet of Python in a fresh interpreter, for tests of what a process does when
it starts (which libraries it loads, which environment it reads) or forks."""
import os
import subprocess
import sys
import textwrap


def run_python(code, timeout=120, drop=(), **env):
    """CompletedProcess of ``python -c code`` (dedented) with this environment, less the
    variables named in ``drop``, plus ``env``; stdout and stderr captured as text."""
    full = {k: v for k, v in os.environ.items() if k not in drop}
    full.update(env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full,
                          capture_output=True, text=True, timeout=timeout)
