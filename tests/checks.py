"""Comparison helpers: a failing check names the array, the max difference and the first mismatches."""
import numpy as np

WORST_ERRORS: dict = {}  # key -> worst max abs difference seen; printed in pytest's summary



def assert_close(name: str, got: np.ndarray, want: np.ndarray, tol: float, show: int = 5,
                 key: str | None = None) -> float:
    """Assert |got - want| <= tol everywhere; return the max abs difference.

    With `key`, the worst difference is kept in WORST_ERRORS[key] for the end-of-run summary.
    """
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{name}: shape {got.shape} != expected {want.shape}"
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    worst = float(diff.max()) if diff.size else 0.0
    if key is not None:
        WORST_ERRORS[key] = max(WORST_ERRORS.get(key, 0.0), worst)
    if not worst <= tol:  # also catches NaN
        bad = np.argwhere(~(diff <= tol))[:show]
        lines = [f"  at {tuple(int(i) for i in idx)}: got {got[tuple(idx)]!r}, want {want[tuple(idx)]!r}"
                 for idx in bad]
        raise AssertionError(f"{name}: max abs diff {worst:.3e} > tol {tol:.1e}; "
                             f"{int((~(diff <= tol)).sum())} of {diff.size} mismatch; first:\n" + "\n".join(lines))
    return worst
