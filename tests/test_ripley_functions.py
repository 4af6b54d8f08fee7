"""Ripley's functions: CSR gives H ~ 0 inside the envelope, clusters give a peak near their scale; the estimator
agrees with astropy's on the same points."""

from __future__ import annotations

import numpy as np
import pytest

from napari_miro.regions import Region
from napari_miro.ripley_functions import default_radii, ripley, ripley_k

FIELD = Region.rectangle(0.0, 0.0, 4000.0, 3000.0)


def _csr(n: int, seed: int) -> np.ndarray:
    return FIELD.uniform_points(n, np.random.default_rng(seed))


def _clustered(seed: int, sigma: float = 30.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.uniform((300, 300), (3700, 2700), size=(40, 2))
    return np.concatenate([c + rng.normal(0, sigma, (30, 2)) for c in centres])


@pytest.mark.parametrize("mode", ["translation", "none"])
def test_k_agrees_with_astropy_on_the_same_points(mode):
    astropy_stats = pytest.importorskip("astropy.stats")
    points = np.concatenate([_csr(300, 1), _clustered(2)[:400]])
    radii = np.linspace(10.0, 600.0, 25)
    theirs = astropy_stats.RipleysKEstimator(area=FIELD.area, x_max=4000, y_max=3000, x_min=0, y_min=0).evaluate(
        points, radii, mode=mode
    )
    np.testing.assert_allclose(ripley_k(points, radii, FIELD, mode), theirs, rtol=1e-9)


def test_complete_spatial_randomness_stays_in_its_envelope():
    result = ripley(_csr(2000, 3), region=FIELD, seed=4)
    np.testing.assert_allclose(result.l, result.radii, rtol=0.08)  # L(r) = r under CSR
    inside = (result.h >= result.envelope_low - 1.0) & (result.h <= result.envelope_high + 1.0)
    assert inside.mean() > 0.9
    table = result.to_frame()
    assert list(table.columns) == ["radius_nm", "K_nm2", "L_nm", "H_nm", "H_csr_low_nm", "H_csr_high_nm"]


def test_clusters_rise_above_the_envelope_near_their_scale():
    small, large = ripley(_clustered(5, 20.0), region=FIELD), ripley(_clustered(5, 60.0), region=FIELD)
    for result in (small, large):
        assert (result.h > result.envelope_high).sum() > 10 and result.correction == "translation"
    assert 20.0 <= small.peak_radius_nm < large.peak_radius_nm <= 400.0  # the peak follows the clusters' size


def test_border_correction_on_a_polygon_and_on_the_rectangle():
    cell = Region(np.array([[0, 0], [4000, 0], [4000, 1500], [2000, 3000], [0, 3000]], dtype=float), "cell")
    points = cell.uniform_points(2000, np.random.default_rng(6))
    result = ripley(points, region=cell, n_simulations=0)
    assert result.correction == "border" and result.envelope_low is None
    np.testing.assert_allclose(result.l, result.radii, rtol=0.1)
    with pytest.raises(ValueError, match="rectangles"):
        ripley(points, region=cell, correction="translation")
    csr = _csr(2000, 7)
    radii = np.linspace(20, 500, 10)
    np.testing.assert_allclose(ripley_k(csr, radii, FIELD, "border"), ripley_k(csr, radii, FIELD), rtol=0.12)


def test_thinning_leaves_k_alone_and_bad_input_is_refused():
    points = _clustered(8)
    full = ripley(points, region=FIELD, n_simulations=0)
    thinned = ripley(points, region=FIELD, n_simulations=0, max_points=600, seed=1)
    assert thinned.n_points == 600 and thinned.n_total == len(points)
    np.testing.assert_allclose(thinned.k[10:], full.k[10:], rtol=0.25)
    assert default_radii(FIELD).max() == pytest.approx(750.0)  # a quarter of the shorter side
    with pytest.raises(ValueError, match="holds 0 localization"):
        ripley(points, region=Region.rectangle(-100, -100, -50, -50, "empty"))
    with pytest.raises(ValueError, match="radii"):
        ripley(points, radii=np.array([0.0, 10.0]))
    with pytest.raises(ValueError, match="edge correction"):
        ripley(points, correction="periodic")


def test_the_peak_is_described_in_words():
    clustered = ripley(_clustered(5, 20.0), region=FIELD)
    assert clustered.describe() == f"H peaks at {clustered.peak_radius_nm:.0f} nm"
    short = ripley(_clustered(5, 60.0), radii=np.linspace(5, 40, 8), region=FIELD)
    assert short.describe().startswith("H still rises at the largest radius (40 nm)")
    csr = ripley(_csr(2000, 11), region=FIELD, radii=np.linspace(20, 300, 8))
    assert csr.describe() == "no clustering above the random envelope"


def test_one_table_for_several_regions_and_none():
    from napari_miro.ripley_functions import TABLE_COLUMNS, ripley_table

    left, right = Region.rectangle(0, 0, 2000, 3000, "left"), Region.rectangle(2000, 0, 4000, 3000, "right")
    points = _clustered(5)
    results = [(region, ripley(points, region=region, n_simulations=2)) for region in (left, right)]
    table = ripley_table(results)
    assert list(table.columns) == TABLE_COLUMNS and table["region"].unique().tolist() == ["left", "right"]
    assert table.groupby("region")["area_um2"].first().tolist() == [6.0, 6.0]
    assert list(ripley_table([]).columns) == TABLE_COLUMNS
