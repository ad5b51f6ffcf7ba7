"""numba.cuda backend (not yet implemented; see issue 7)."""
