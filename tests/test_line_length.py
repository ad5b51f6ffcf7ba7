"""No source line longer than 99 characters.

Scanned: the .py, .pyx, .pxd and .h files under fastnn/, kernels/, bench/ and tests/, and
setup.py. Not scanned: build output (build/, __pycache__, the .c files Cython generates)
and directories reached through a symlink (a development checkout links fastnn/kernels to
kernels/, which is scanned once, directly). A failure names each offending file:line.
"""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_LINE = 99
SCANNED_DIRS = ("fastnn", "kernels", "bench", "tests")
SCANNED_FILES = ("setup.py",)
SUFFIXES = (".py", ".pyx", ".pxd", ".h")
SKIPPED_DIRS = {"build", "dist", "__pycache__", ".venv", ".git"}


def long_lines(path, limit=MAX_LINE):
    """(line number, length) of each line of path longer than limit characters."""
    with open(path, encoding="utf-8") as f:
        return [(number, len(line.rstrip("\r\n")))
                for number, line in enumerate(f, 1) if len(line.rstrip("\r\n")) > limit]


def scanned_files(root=ROOT):
    """The files the rule covers, as paths relative to root, sorted."""
    found = [name for name in SCANNED_FILES if (root / name).is_file()]
    for top in SCANNED_DIRS:
        for folder, subfolders, files in os.walk(root / top):   # (symlinks not followed)
            subfolders[:] = sorted(d for d in subfolders if d not in SKIPPED_DIRS)
            found += [(Path(folder) / name).relative_to(root).as_posix()
                      for name in files if name.endswith(SUFFIXES)]
    return sorted(found)


def test_no_line_over_99_characters():
    files = scanned_files()
    assert len(files) > 100 and "fastnn/ops.py" in files and "tests/test_line_length.py" in files
    offending = [f"{name}:{number}: {length} characters"
                 for name in files
                 for number, length in long_lines(ROOT / name)]
    assert not offending, (f"{len(offending)} lines over {MAX_LINE} characters:\n"
                           + "\n".join(offending))


def test_the_check_finds_a_long_line_and_skips_build_output(tmp_path):
    (tmp_path / "kernels" / "build").mkdir(parents=True)
    (tmp_path / "kernels" / "k.pyx").write_text("x = 1\n" + "#" * 99 + "\n" + "#" * 100 + "\n")
    (tmp_path / "kernels" / "k.c").write_text("#" * 200 + "\n")
    (tmp_path / "kernels" / "build" / "b.py").write_text("#" * 200 + "\n")
    (tmp_path / "setup.py").write_text("#" * 99 + "\r\n")
    assert scanned_files(tmp_path) == ["kernels/k.pyx", "setup.py"]
    assert long_lines(tmp_path / "kernels" / "k.pyx") == [(3, 100)]
    assert long_lines(tmp_path / "setup.py") == []
