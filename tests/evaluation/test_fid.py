"""FID / KID against closed forms, and the feature path through a TorchScript file."""
import numpy as np
import pytest
import torch

from evaluation.fid import (InceptionFeatures, feature_stats, fid_from_features, fid_kid,
                            find_inception, frechet_distance, kid_from_features)
from utils.errors import ToonFaceError


class TinyInception(torch.nn.Module):
    """The calling convention of inception-2015-12-05.pt: uint8 NCHW in, features out."""

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        f = torch.nn.functional.adaptive_avg_pool2d(x.float() / 255.0, 2).flatten(1)
        return torch.cat([f, f * f], 1)  # (N, 24)


def write_tiny_inception(path) -> str:
    torch.jit.script(TinyInception()).save(str(path))
    return str(path)


def test_frechet_distance_of_diagonal_gaussians_matches_closed_form():
    # Commuting covariances: FID = |mu1 - mu2|^2 + sum_i (sqrt(s1_i) - sqrt(s2_i))^2
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, -1.0])
    s1, s2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    expected = 1 + 0 + 9 + (1 - 2) ** 2 + (2 - 1) ** 2 + 0
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, abs=1e-9)


def test_frechet_distance_one_dimensional_and_identical():
    assert frechet_distance([0.0], [[4.0]], [3.0], [[1.0]]) == pytest.approx(9 + 1, abs=1e-9)
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 4))
    assert fid_from_features(a, a) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("n_a,n_b,dim", [(3, 3, 8), (20, 35, 64), (50, 50, 256)])
def test_few_samples_give_the_exact_fid_without_a_warning(n_a, n_b, dim):
    """Fewer samples than dimensions: singular covariances. The trace term against an oracle
    that needs no matrix square root: with S1 = A'A / (n_a - 1), S2 = B'B / (n_b - 1) (A, B the
    centred features), the square roots of the eigenvalues of S1 S2 are the singular values of
    A B' / sqrt((n_a - 1)(n_b - 1)). scipy's sqrtm on the product warns "Matrix is singular"
    here (the LinAlgWarning users saw)."""
    import warnings

    rng = np.random.default_rng(n_a + dim)
    # like Inception pool3 features: after a ReLU, and some units dead on every image (exactly
    # zero variance, which is what made sqrtm warn)
    a = np.maximum(rng.normal(size=(n_a, dim)), 0)
    b = np.maximum(rng.normal(size=(n_b, dim)) * 1.5 + 0.3, 0)
    a[:, : dim // 4] = 0
    b[:, : dim // 4] = 0
    ac, bc = a - a.mean(0), b - b.mean(0)
    trace_sqrt = np.linalg.svd(ac @ bc.T / np.sqrt((n_a - 1) * (n_b - 1)), compute_uv=False).sum()
    (m1, s1), (m2, s2) = feature_stats(a), feature_stats(b)
    expected = float((m1 - m2) @ (m1 - m2) + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = fid_from_features(a, b)
        assert fid_from_features(a, a) == pytest.approx(0.0, abs=1e-6 * np.trace(s1))
    assert value == pytest.approx(expected, rel=1e-7)


def test_full_rank_fid_matches_scipy_sqrtm():
    from scipy import linalg

    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(400, 16)), rng.normal(size=(300, 16)) @ rng.normal(size=(16, 16)) * 0.3
    (m1, s1), (m2, s2) = feature_stats(a), feature_stats(b)
    ref = (m1 - m2) @ (m1 - m2) + np.trace(s1 + s2 - 2 * np.real(linalg.sqrtm(s1 @ s2)))
    assert frechet_distance(m1, s1, m2, s2) == pytest.approx(ref, rel=1e-9)


def test_fid_kid_says_when_there_are_too_few_samples():
    rng = np.random.default_rng(0)
    few = fid_kid(rng.normal(size=(10, 32)), rng.normal(size=(40, 32)), num_subsets=2)
    assert few["note"].startswith("FID from 10 images") and "33+" in few["note"]
    enough = fid_kid(rng.normal(size=(40, 32)), rng.normal(size=(40, 32)), num_subsets=2)
    assert enough["note"] is None


def test_feature_stats_shape_checks():
    with pytest.raises(ValueError):
        feature_stats(np.zeros((1, 4)))


def test_kid_of_identical_distributions_is_close_to_zero_and_of_shifted_ones_positive():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(400, 16)), rng.normal(size=(400, 16))
    mean, std = kid_from_features(a, b, num_subsets=20, subset_size=200)
    assert abs(mean) < 0.05 and std >= 0
    same, _ = kid_from_features(a, a, num_subsets=20, subset_size=200)
    assert abs(same) < 0.05
    shifted, _ = kid_from_features(a, b + 2.0, num_subsets=20, subset_size=200)
    assert shifted > 0.5


def test_kid_matches_a_direct_unbiased_mmd():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(6, 3)), rng.normal(size=(6, 3)) + 0.5
    k = lambda p, q: (p @ q.T / 3 + 1) ** 3  # noqa: E731
    m = 6
    direct = sum(k(x[i:i + 1], x[j:j + 1])[0, 0] + k(y[i:i + 1], y[j:j + 1])[0, 0]
                 for i in range(m) for j in range(m) if i != j) / (m * (m - 1)) - 2 * k(x, y).mean()
    mean, std = kid_from_features(x, y, num_subsets=3, subset_size=6)  # whole sets: no sampling
    assert mean == pytest.approx(direct, rel=1e-9) and std == pytest.approx(0, abs=1e-12)


def test_fid_path_through_a_torchscript_file(tmp_path):
    path = write_tiny_inception(tmp_path / "tiny.pt")
    ext = InceptionFeatures(path, batch_size=3)
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(7)]
    feats = ext(imgs)
    assert feats.shape == (7, 24) and feats.dtype == np.float64
    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2)
    np.testing.assert_allclose(feats, TinyInception()(x).double().numpy(), rtol=1e-6)
    res = fid_kid(feats, feats, num_subsets=5)
    assert res["fid"] == pytest.approx(0, abs=1e-6) and res["n_fake"] == 7


def test_find_inception_reports_where_it_looked(tmp_path):
    path, reason = find_inception(None, tmp_path)
    assert path is None and str(tmp_path) in reason and "--inception" in reason
    path, reason = find_inception(tmp_path / "missing.pt")
    assert path is None and "missing.pt" in reason
    (tmp_path / "bad.pt").write_bytes(b"not torchscript")
    with pytest.raises(ToonFaceError, match="not a TorchScript"):
        InceptionFeatures(tmp_path / "bad.pt")
