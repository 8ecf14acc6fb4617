"""An independent, loop-by-loop wACSF written straight from the published formulas.

Slow on purpose: every sum is an explicit Python loop over neighbours and
pairs, so it shares no vectorisation tricks (Gram matrices, combined
exponents, log/exp powers) with the library it checks.
"""

import math

import numpy as np


def reference_wacsf(numbers, positions, absorber, *, r_min, r_max, n_g2, n_g4, lambdas, zetas,
                    weight_scale, clip_cutoff, g4_grid_points):
    def fc(r):
        if clip_cutoff and r >= r_max:
            return 0.0
        return 0.5 * (math.cos(math.pi * r / r_max) + 1.0)

    centre = positions[absorber]
    neigh = []
    for j in range(len(numbers)):
        if j == absorber:
            continue
        d = [positions[j][c] - centre[c] for c in range(3)]
        r = math.sqrt(sum(x * x for x in d))
        if 0.0 < r < r_max:
            neigh.append((weight_scale * numbers[j], d, r))

    out = [sum(fc(r) for _, _, r in neigh)]

    g2_mu = [r_min + 0.5 + i * (r_max - r_min - 1.0) / (n_g2 - 1) for i in range(n_g2)]
    dr = g2_mu[1] - g2_mu[0]
    for mu in g2_mu:
        eta = 1.0 / (2.0 * dr * dr)
        out.append(sum(w * math.exp(-eta * (r - mu) ** 2) * fc(r) for w, _, r in neigh))

    n_used = n_g4 // (len(lambdas) * len(zetas))
    n_grid = g4_grid_points if g4_grid_points is not None else n_used
    r_aux = [r_min + 1.0 + i * (r_max - r_min - 1.5) / (n_grid - 1) for i in range(n_grid)][:n_used]
    for ra in r_aux:
        eta = 1.0 / (2.0 * ra * ra)
        for lam in lambdas:
            for zeta in zetas:
                total = 0.0
                for a in range(len(neigh)):
                    for b in range(a + 1, len(neigh)):
                        wj, dj, rj = neigh[a]
                        wk, dk, rk = neigh[b]
                        cos = sum(dj[c] * dk[c] for c in range(3)) / (rj * rk)
                        rjk = math.sqrt(sum((dj[c] - dk[c]) ** 2 for c in range(3)))
                        total += (wj * wk * (1.0 + lam * cos) ** zeta
                                  * math.exp(-eta * rj * rj) * math.exp(-eta * rk * rk) * math.exp(-eta * rjk * rjk)
                                  * fc(rj) * fc(rk) * fc(rjk))
                out.append(2.0 ** (1.0 - zeta) * total)
    return np.array(out)
