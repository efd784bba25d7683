"""Plain statistical functions. No dependencies beyond the standard library."""

from __future__ import annotations

import math

Z95 = 1.959963984540054  # the 97.5th percentile of the standard normal


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials (Wilson 1927).

    Unlike the normal approximation it stays inside [0, 1] and behaves at k = 0 and k = n,
    which small safety runs hit all the time.
    """
    if n <= 0:
        raise ValueError("wilson_interval needs n > 0")
    if not 0 <= k <= n:
        raise ValueError(f"k={k} outside 0..n={n}")
    p = k / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    # Clamp float noise at the ends so k = 0 gives exactly 0 and k = n exactly 1.
    return max(0.0, centre - half), min(1.0, centre + half)
