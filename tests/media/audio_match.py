"""Compare decoded audio with its source: the best lag and the similarity there (FFT-based)."""

from __future__ import annotations

import numpy as np


def best_alignment(reference: np.ndarray, decoded: np.ndarray, max_lag: int) -> tuple[int, float]:
    """Lag (0..max_lag) at which ``decoded`` best matches ``reference``, and the cosine similarity.

    The first ``len(reference) - max_lag`` samples of the reference are compared
    with each window of ``decoded``; 1.0 means identical up to a gain.
    """
    n = min(len(reference) - max_lag, len(decoded) - max_lag)
    if n <= 0:
        raise ValueError(f"too little audio to compare: {len(reference)} vs {len(decoded)}")
    ref = reference[:n].astype(np.float64)
    dec = decoded[: n + max_lag].astype(np.float64)
    size = 1 << int(np.ceil(np.log2(len(dec) + n)))
    cross = np.fft.irfft(np.fft.rfft(dec, size) * np.conj(np.fft.rfft(ref, size)), size)[
        : max_lag + 1
    ]
    energy = np.concatenate([[0.0], np.cumsum(dec * dec)])
    windows = energy[n : n + max_lag + 1] - energy[: max_lag + 1]
    scores = cross / (np.sqrt(np.maximum(windows, 1e-9)) * np.sqrt(np.sum(ref * ref)))
    lag = int(np.argmax(scores))
    return lag, float(scores[lag])
