"""Spectrum processing: broadening, edge energy, normalisation, common energy grids.

Small numpy functions, each configured by one settings dataclass with a JSON
form (``to_dict``/``from_dict``; unknown keys fail with the valid ones):

- :func:`broaden` / :class:`BroadeningSettings` (presets in :data:`BROADENING_PRESETS`)
- :func:`edge_energy` / :class:`EdgeSettings`
- :func:`normalise` / :class:`NormalisationSettings`
- :func:`resample` / :class:`EnergyGrid` (``absolute:7097:7172:226``, ``relative:-15:60:226``)
- :func:`process` / :class:`ProcessSettings`: all of the above in order;
  :func:`processor_from_dict` gives it as a ``Spectrum -> Spectrum`` callable.
"""

from xanesnet.spectra.broadening import (
    BROADENING_PRESETS,
    BroadeningSettings,
    arctangent_width,
    broaden,
    lorentzian_convolve,
)
from xanesnet.spectra.edge import EdgeSettings, EdgeStep, NormalisationSettings, edge_energy, fit_edge_step, normalise
from xanesnet.spectra.grid import EnergyGrid, check_coverage, parse_grid, resample, to_absolute
from xanesnet.spectra.process import ProcessSettings, Processor, process, processor_from_dict

__all__ = [
    "BROADENING_PRESETS",
    "BroadeningSettings",
    "EdgeSettings",
    "EdgeStep",
    "EnergyGrid",
    "NormalisationSettings",
    "ProcessSettings",
    "Processor",
    "arctangent_width",
    "broaden",
    "check_coverage",
    "edge_energy",
    "fit_edge_step",
    "lorentzian_convolve",
    "normalise",
    "parse_grid",
    "process",
    "processor_from_dict",
    "resample",
    "to_absolute",
]
