"""Reference spectra from geometry with FEFF10: K-edge XANES and K-beta XES.

``feff10`` (``pip install xanesnet[simulate]``) and ``dask``
(``pip install xanesnet[cluster]``) are imported only when a simulation runs.

>>> from xanesnet.simulate import simulate, read_simulations
>>> summary = simulate(["complexes/"], "feff.h5", spectrum="both", workers=2)  # doctest: +SKIP
>>> data = read_simulations("feff.h5", "xanes")  # doctest: +SKIP
"""

from xanesnet.simulate.feff import (
    SPECTRA,
    XMU_COLUMNS,
    FeffSettings,
    MoleculeResult,
    check_structure,
    feff_input,
    simulate_molecule,
)
from xanesnet.simulate.runner import SimulationSummary, simulate
from xanesnet.simulate.store import SimulatedSpectrum, read_simulations

__all__ = [
    "SPECTRA",
    "XMU_COLUMNS",
    "FeffSettings",
    "MoleculeResult",
    "SimulatedSpectrum",
    "SimulationSummary",
    "check_structure",
    "feff_input",
    "read_simulations",
    "simulate",
    "simulate_molecule",
]
