"""The optional numba.cuda path (imported lazily: the CPU path never imports numba.cuda)."""
