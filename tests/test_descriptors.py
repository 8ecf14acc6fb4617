"""wACSF: invariances, the published presets against an independent implementation, dscribe, errors."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from _wacsf_reference import reference_ligand_channels, reference_wacsf
from conftest import EXAMPLES, check_invariances

from xanesnet.descriptors import DESCRIPTORS, PRESETS, WACSF, descriptor_from_dict, preset
from xanesnet.errors import XanesnetError
from xanesnet.io.structures import Structure, read_structure, resolve_absorber

REFERENCE_FIELDS = ("r_min", "r_max", "n_g2", "n_g4", "lambdas", "zetas", "weight_scale", "clip_cutoff", "g4_grid_points")


def example(name: str = "ferrocene") -> Structure:
    return read_structure(EXAMPLES / f"{name}.xyz")


def random_complex(seed: int, n: int = 40) -> Structure:
    """A metal at the origin in a cloud of light atoms, some beyond r_max, none overlapping."""
    rng = np.random.default_rng(seed)
    pts = [np.zeros(3)]
    while len(pts) < n:
        p = rng.uniform(-7, 7, size=3)
        if min(np.linalg.norm(p - q) for q in pts) > 1.0:
            pts.append(p)
    numbers = np.concatenate([[26], rng.choice([1, 6, 7, 8, 15, 16, 17], size=n - 1)])
    return Structure(name=f"random{seed}", numbers=numbers, positions=np.array(pts))


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("molecule", ["ferrocene", "hexacyanoferrate", "random"])
def test_invariances(name, molecule):
    s = random_complex(3) if molecule == "random" else example(molecule)
    check_invariances(PRESETS[name], s, resolve_absorber(s))


@pytest.mark.parametrize("kind", sorted(DESCRIPTORS))
def test_every_registered_descriptor_round_trips_its_settings(kind):
    d = DESCRIPTORS[kind]()
    again = descriptor_from_dict(d.to_dict())
    assert again == d and again.settings_hash() == d.settings_hash()
    s = example()
    np.testing.assert_array_equal(again.create(s, 0), d.create(s, 0))


@pytest.mark.parametrize("name,n_features", [("xanesnet", 49), ("xanesnet-2021", 97)])
def test_presets_reproduce_published_vectors(name, n_features, fe_sample):
    d = preset(name)
    assert d.n_features == n_features
    files = sorted((fe_sample / "xyz").glob("*.xyz"))[:6]
    structures = [read_structure(f) for f in files] + [random_complex(7)]
    kw = {f: getattr(d, f) for f in REFERENCE_FIELDS}
    for s in structures:
        a = resolve_absorber(s)
        ours = d.create(s, a)
        ref = reference_wacsf(s.numbers.tolist(), s.positions.tolist(), a, **kw)
        np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-12 * np.abs(ref).max())


def test_ligand_channels_match_a_loop_implementation(fe_sample):
    """Angular pairs, first shell and donor environments of the default against explicit loops."""
    d = preset("default")
    start = d.feature_names.index(next(n for n in d.feature_names if n.startswith("A_")))
    files = sorted((fe_sample / "xyz").glob("*.xyz"))[:3]
    structures = [read_structure(f) for f in files] + [random_complex(7), example("hexacyanoferrate")]
    for s in structures:
        a = resolve_absorber(s)
        ours = d.create(s, a)[start:]
        ref = reference_ligand_channels(s.numbers.tolist(), s.positions.tolist(), a, d)
        assert len(ours) == len(ref) and ref.max() > 0
        np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-12 * np.abs(ref).max())


def test_donor_environment_tells_cyanide_from_carbonyl_carbon():
    """Same Fe-C first shell, different ligand atom behind the donor: only the donor channels differ."""
    hcf = example("hexacyanoferrate")
    carbonyl = replace(hcf, numbers=np.where(hcf.numbers == 7, 8, hcf.numbers))
    d = preset("default")
    a, b = d.create(hcf, 0), d.create(carbonyl, 0)
    names = d.feature_names
    shell = [i for i, n in enumerate(names) if n.startswith("S_C[")]
    np.testing.assert_allclose(a[shell], b[shell])
    cn = [i for i, n in enumerate(names) if n.startswith("D_C:N[")]
    co = [i for i, n in enumerate(names) if n.startswith("D_C:O[")]
    assert a[cn].max() > 0 and b[cn].max() == 0 and b[co].max() > 0 and a[co].max() == 0


def test_legacy_quirks_change_the_vector():
    """The presets' two quirks are real: each changes G4 when switched off."""
    s = random_complex(11, n=60)
    legacy = preset("xanesnet-2021")
    base = legacy.create(s, 0)
    n_g4 = slice(1 + legacy.n_g2, 1 + legacy.n_g2 + legacy.n_g4)
    clipped = replace(legacy, clip_cutoff=True).create(s, 0)
    spread = replace(legacy, g4_grid_points=None).create(s, 0)
    np.testing.assert_allclose(clipped[: n_g4.start], base[: n_g4.start])  # G1, G2 see only r < r_max
    assert not np.allclose(clipped[n_g4], base[n_g4])
    assert not np.allclose(spread[n_g4], base[n_g4])


def test_unweighted_g2_matches_dscribe():
    dscribe = pytest.importorskip("dscribe.descriptors", reason="dscribe is a test-only extra: pip install dscribe")
    from ase import Atoms

    s = random_complex(5, n=50)
    d = WACSF(r_min=0.0, r_max=6.0, n_g2=24, n_g4=0, weight_scale=1.0)
    eta, mu = d._g2_grid
    species = sorted(set(s.symbols))
    acsf = dscribe.ACSF(species=species, r_cut=d.r_max, g2_params=np.column_stack([eta, mu]))
    out = acsf.create(Atoms(numbers=s.numbers, positions=s.positions), centers=[0])[0]
    # dscribe's layout: per neighbour element in order of atomic number, G1 then the G2s
    z_sorted = np.array(sorted(set(s.numbers.tolist())), float)
    per_species = out.reshape(len(z_sorted), 1 + len(mu))
    ours = d.create(s, 0)
    # our Z-weighted G2 is dscribe's per-element G2 summed with the element weights
    np.testing.assert_allclose(ours[0], per_species[:, 0].sum(), rtol=1e-10)
    np.testing.assert_allclose(ours[1:], z_sorted @ per_species[:, 1:], rtol=1e-10)
    unweighted = replace(d, weight_scale=1.0).create(replace(s, numbers=np.ones_like(s.numbers)), 0)
    np.testing.assert_allclose(unweighted[1:], per_species[:, 1:].sum(0), rtol=1e-10)


def test_element_channels_split_g2_by_group():
    s = example("hexaaquairon")
    d = WACSF(element_groups=("H", "O"), n_element_g2=8)
    v = d.create(s, 0)
    names = d.feature_names
    h = np.array([v[i] for i, n in enumerate(names) if n.startswith("G2_H[")])
    o = np.array([v[i] for i, n in enumerate(names) if n.startswith("G2_O[")])
    other = np.array([v[i] for i, n in enumerate(names) if n.startswith("G2_other[")])
    assert h.sum() > 0 and o.sum() > 0 and np.all(other == 0)
    # O sits at 2.12 A, H further out: the O channel peaks at a shorter distance
    mu = d._element_grid[1]
    assert mu[np.argmax(o)] < mu[np.argmax(h)]


def test_charge_and_spin_are_appended():
    d = WACSF(charge_spin=True)
    v = d.create(example("hexaaquairon"), 0)
    assert d.feature_names[-2:] == ["charge", "spin"] and list(v[-2:]) == [2.0, 2.0]


def test_charge_spin_missing_is_a_clear_error(fe_sample):
    s = read_structure(sorted((fe_sample / "xyz").glob("*.xyz"))[0])
    with pytest.raises(XanesnetError, match=r"\.xyz: charge_spin needs the charge q and spin S"):
        WACSF(charge_spin=True).create(s, 0)


def test_no_neighbour_within_r_max():
    s = Structure(name="lonely", numbers=np.array([26, 8]), positions=np.array([[0, 0, 0], [0, 0, 7.0]]), source="lonely.xyz")
    with pytest.raises(XanesnetError, match=r"^lonely.xyz: absorber \(atom 0\) has no neighbour within r_max = 6.0 A$"):
        WACSF().create(s, 0)


@pytest.mark.parametrize("kwargs,message", [
    ({"r_min": 5.0, "r_max": 4.0}, "need 0 <= r_min < r_max"),
    ({"n_g4": 30}, "n_g4=30 is not a multiple of len"),
    ({"n_g2": 1}, "n_g2 must be 0 or at least 2"),
    ({"element_groups": ("C", "Xx")}, "unknown element 'Xx'"),
    ({"element_groups": ("C", "C,N")}, "element C is in more than one group"),
    ({"angular_groups": ("C", "Qq")}, "unknown element 'Qq'"),
    ({"donor_env_groups": ("C",)}, "donor-environment channels need shell_groups"),
    ({"shell_groups": ("C",), "shell_r_min": 3.0, "shell_r_max": 2.0}, "first-shell channels need"),
])
def test_invalid_settings(kwargs, message):
    with pytest.raises(XanesnetError, match=message):
        WACSF(**kwargs)


def test_unknown_setting_lists_valid_ones():
    with pytest.raises(XanesnetError, match=r"unknown wacsf descriptor setting\(s\) 'r_cut'; valid: kind, r_min, r_max"):
        descriptor_from_dict({"kind": "wacsf", "r_cut": 5.0})


def test_settings_hash_changes_with_any_setting():
    base = WACSF()
    assert replace(base, r_max=6.5).settings_hash() != base.settings_hash()
    assert replace(base, clip_cutoff=False).settings_hash() != base.settings_hash()


def test_featurisation_does_not_import_torch(tmp_path):
    import subprocess
    import sys

    code = ("import sys; from xanesnet.pipeline import featurize_to_npz; from xanesnet.descriptors import preset; "
            f"featurize_to_npz([{str(EXAMPLES)!r}], preset('default').to_dict(), {str(tmp_path / 'f.npz')!r}, progress=False); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_batch_equals_one_molecule_at_a_time(name):
    """create_batch over molecules of many sizes (several blocks) gives each molecule's own vector; a bad one gets
    NaN and its error without disturbing the others."""
    import xanesnet.descriptors.wacsf as wacsf_module

    d = PRESETS[name]
    structures = [example(f.stem) for f in sorted(EXAMPLES.glob("*.xyz"))] + [random_complex(s, n=20 + 9 * s) for s in range(8)]
    lonely = Structure(name="lonely", numbers=np.array([26, 8]), positions=np.array([[0, 0, 0], [0, 0, 7.0]]), source="lonely.xyz")
    structures.insert(5, lonely)
    absorbers = [0 if s is lonely else resolve_absorber(s) for s in structures]
    old_block = wacsf_module.BLOCK_ATOMS
    try:
        wacsf_module.BLOCK_ATOMS = 120  # force several blocks
        x, errors = d.create_batch(structures, absorbers)
    finally:
        wacsf_module.BLOCK_ATOMS = old_block
    assert [e is not None for e in errors] == [s is lonely for s in structures]
    assert "lonely.xyz: absorber (atom 0) has no neighbour" in str(errors[5]) and np.isnan(x[5]).all()
    for row, s, a in zip(x, structures, absorbers):
        if s is not lonely:
            one = d.create(s, a)
            np.testing.assert_allclose(row, one, rtol=0, atol=1e-12 * np.abs(one).max())
