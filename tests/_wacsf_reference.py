"""An independent, loop-by-loop wACSF written straight from the published formulas.

Slow on purpose: every sum is an explicit Python loop over neighbours and
pairs, so it shares no vectorisation tricks (Gram matrices, combined
exponents, log/exp powers) with the library it checks.
"""

import math

import numpy as np
from ase.data import atomic_numbers as ATOMIC_NUMBER


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


def reference_ligand_channels(numbers, positions, absorber, d):
    """The angular-pair, first-shell and donor-environment channels of ``d``, one neighbour at a time."""

    def cutoff(r, r_cut):
        return 0.5 * (math.cos(math.pi * r / r_cut) + 1.0) if r < r_cut else 0.0

    def group(z, groups):
        for g, grp in enumerate(groups):
            if z in [ATOMIC_NUMBER[s.strip()] for s in grp.split(",")]:
                return g
        return len(groups)

    def dist(p, q):
        return math.sqrt(sum((p[c] - q[c]) ** 2 for c in range(3)))

    centre = positions[absorber]
    neigh = [j for j in range(len(numbers)) if j != absorber and 0.0 < dist(positions[j], centre) < d.r_max]
    out = []

    # angular pairs: loop over group pairs (a <= b), then R_s, then theta_s, then over atom pairs
    n_groups = len(d.angular_groups) + 1
    close = [j for j in neigh if dist(positions[j], centre) < d.angular_r_max]
    thetas = [(t + 0.5) * math.pi / d.n_angular for t in range(d.n_angular)]
    for ga in range(n_groups):
        for gb in range(ga, n_groups):
            for rs in d.angular_shells:
                for ts in thetas:
                    total = 0.0
                    for x in range(len(close)):
                        for y in range(x + 1, len(close)):
                            j, k = close[x], close[y]
                            if sorted([group(numbers[j], d.angular_groups), group(numbers[k], d.angular_groups)]) != [ga, gb]:
                                continue
                            rj, rk = dist(positions[j], centre), dist(positions[k], centre)
                            cos = sum((positions[j][c] - centre[c]) * (positions[k][c] - centre[c]) for c in range(3)) / (rj * rk)
                            theta = math.acos(max(-1.0, min(1.0, cos)))
                            total += (2.0 ** (1.0 - d.angular_zeta) * (1.0 + math.cos(theta - ts)) ** d.angular_zeta
                                      * math.exp(-d.angular_eta * ((rj + rk) / 2.0 - rs) ** 2)
                                      * cutoff(rj, d.angular_r_max) * cutoff(rk, d.angular_r_max))
                    out.append(total)

    # first shell: heavy atoms only
    heavy = [j for j in neigh if numbers[j] > 1]
    step = (d.shell_r_max - d.shell_r_min) / (d.n_shell_g2 - 1)
    for g in range(len(d.shell_groups) + 1):
        for m in range(d.n_shell_g2):
            mu = d.shell_r_min + m * step
            out.append(sum(math.exp(-((dist(positions[j], centre) - mu) ** 2) / (2.0 * step * step))
                           for j in heavy if group(numbers[j], d.shell_groups) == g))

    # donor environments
    step = (d.donor_env_r_max - 1.5) / (d.n_donor_env - 1)
    for g in range(len(d.shell_groups) + 1):
        for h in range(len(d.donor_env_groups) + 1):
            for m in range(d.n_donor_env):
                mu = 1.0 + m * step
                total = 0.0
                for j in heavy:
                    if group(numbers[j], d.shell_groups) != g or dist(positions[j], centre) >= d.donor_cutoff:
                        continue
                    wd = cutoff(dist(positions[j], centre), d.donor_cutoff)
                    for k in range(len(numbers)):
                        if k in (j, absorber) or group(numbers[k], d.donor_env_groups) != h:
                            continue
                        rdk = dist(positions[j], positions[k])
                        total += wd * math.exp(-((rdk - mu) ** 2) / (2.0 * step * step)) * cutoff(rdk, d.donor_env_r_max)
                out.append(total)
    return np.array(out)
