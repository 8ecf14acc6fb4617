"""xanesnet: X-ray absorption and emission spectra of transition-metal complexes from geometry.

Data flows one way: a structure (``xanesnet.io``) becomes a descriptor vector
(``xanesnet.descriptors``), a torch model (``xanesnet.models``) maps it to a
spectrum on an energy grid, and a saved bundle (``xanesnet.bundle``) carries
everything ``xanesnet.predict`` needs. Heavy libraries (torch, matplotlib,
feff10) are imported only where they are used.
"""

__version__ = "0.1.0"
