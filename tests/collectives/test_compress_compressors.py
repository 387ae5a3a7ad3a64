"""AdaComp and ScaleCom on numpy arrays: exact error feedback, achieved ratios, errors."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from trainsim.collectives import (
    AdaComp,
    CollectiveError,
    CompressionError,
    CompressionSpec,
    ScaleCom,
    calibrate_compression,
)


def _heavy_tailed(rng: np.random.Generator, n: int) -> npt.NDArray[np.float32]:
    # Student-t with 2 degrees of freedom: the heavy tails of real gradient distributions.
    return rng.standard_t(2, n).astype(np.float32)


def test_adacomp_residue_plus_sent_is_accumulated_exactly() -> None:
    rng = np.random.default_rng(1)
    comp = AdaComp(bin_size=50)
    residue = np.zeros(10_007, np.float32)  # a ragged last bin too
    for _ in range(6):
        grad = _heavy_tailed(rng, residue.size) * np.float32(rng.uniform(0.01, 10))
        accumulated = residue + grad
        out = comp.compress(grad)
        assert np.array_equal(out.residue + out.sent_dense(), accumulated)
        assert out.stats.deferred == 0
        assert set(np.unique(np.abs(out.values))) == {np.float32(out.scale)}
        residue = out.residue.copy()


def test_adacomp_sends_at_least_one_element_per_active_bin() -> None:
    rng = np.random.default_rng(2)
    comp = AdaComp(bin_size=100)
    out = comp.compress(_heavy_tailed(rng, 100_000))
    bins = np.unique(out.indices // 100)
    assert bins.size == 1000


@pytest.mark.parametrize(("bin_size", "low", "high"), [(50, 20.0, 80.0), (500, 100.0, 500.0)])
def test_adacomp_ratio_on_heavy_tailed_gradients(bin_size: int, low: float, high: float) -> None:
    # The paper reports ~40x (convolutions, L_T ~ 50) and ~200x (FC/LSTM, L_T ~ 500).
    rng = np.random.default_rng(3)
    comp = AdaComp(bin_size=bin_size)
    dense = payload = 0.0
    for _ in range(10):
        stats = comp.compress(_heavy_tailed(rng, 200_000)).stats
        dense, payload = dense + stats.dense_bytes, payload + stats.payload_bytes
    assert low <= dense / payload <= high


def test_adacomp_hand_example() -> None:
    comp = AdaComp(bin_size=4)
    grad = np.array([0.1, -2.0, 0.3, 0.2, 1.0, 0.0, 0.0, 0.5], np.float32)
    out = comp.compress(grad)
    # |H| = 2|G| against bin maxima 2.0 and 1.0; scale = mean(2.0, 1.0).
    assert out.indices.tolist() == [1, 4, 7]
    assert out.values.tolist() == [-1.5, 1.5, 1.5]
    assert out.stats.payload_bytes == 8 + 3 * 33 / 8
    residue = comp.residue()
    assert residue is not None
    assert residue.tolist() == pytest.approx([0.1, -0.5, 0.3, 0.2, -0.5, 0.0, 0.0, -1.0])


def test_scalecom_error_feedback_is_exact_and_all_reduce_compatible() -> None:
    rng = np.random.default_rng(4)
    n, d = 4, 20_000
    sc = ScaleCom(n, ratio=100.0)
    memories = [np.zeros(d, np.float32) for _ in range(n)]
    for t in range(5):
        grads = [_heavy_tailed(rng, d) for _ in range(n)]
        out = sc.step(grads)
        assert out.leader == t % n
        assert out.indices.size == d // 100
        for i in range(n):
            accumulated = memories[i] + grads[i]
            assert np.array_equal(out.memories[i] + out.sent_dense(i), accumulated)
        # Shared indices: the all-reduced values are the sum of every learner's.
        np.testing.assert_allclose(out.reduced, np.sum(out.values, axis=0), rtol=1e-6)
        leader_acc = memories[out.leader] + grads[out.leader]
        kth = np.sort(np.abs(leader_acc))[-out.indices.size]
        assert np.all(np.abs(leader_acc[out.indices]) >= kth)
        memories = [m.copy() for m in out.memories]
    assert out.stats.ratio == pytest.approx(50.0)  # values plus indices: 4 + 4 bytes per k


def test_scalecom_low_pass_filter() -> None:
    rng = np.random.default_rng(5)
    sc = ScaleCom(2, ratio=10.0, beta=0.5)
    g1 = [_heavy_tailed(rng, 1000) for _ in range(2)]
    first = sc.step(g1)
    g2 = [_heavy_tailed(rng, 1000) for _ in range(2)]
    second = sc.step(g2)
    for i in range(2):
        acc = first.memories[i] + g2[i]
        unsent = acc - second.sent_dense(i)
        expected = 0.5 * first.memories[i] + 0.5 * unsent
        np.testing.assert_allclose(second.memories[i], expected, rtol=1e-6)


def test_scalecom_chunkwise_top_k() -> None:
    sc = ScaleCom(1, ratio=10.0, chunk_size=100)
    acc = np.arange(1000, dtype=np.float32)
    idx = sc.top_k(acc)
    assert idx.size == 100
    assert idx.tolist() == [c * 100 + j for c in range(10) for j in range(90, 100)]


def test_errors_name_the_field_and_derive_from_collective_error() -> None:
    with pytest.raises(CompressionError, match=r"CompressionSpec\.ratio.*greater than 1"):
        CompressionSpec(method="adacomp", ratio=0.5)
    with pytest.raises(CollectiveError, match=r"CompressionSpec\.method"):
        CompressionSpec(method="topk")
    with pytest.raises(CompressionError, match="layer type 'fc'"):
        CompressionSpec(method="adacomp", layer_ratios={"fc": 0.1})
    with pytest.raises(CompressionError, match=r"bin_size must be in \[1"):
        AdaComp(bin_size=0)
    with pytest.raises(CompressionError, match="beta"):
        ScaleCom(4, beta=0.0)
    with pytest.raises(CompressionError, match="expects 4 gradients"):
        ScaleCom(4).step([np.zeros(3)])
    comp = AdaComp()
    comp.compress(np.zeros(10, np.float32))
    with pytest.raises(CompressionError, match="shape"):
        comp.compress(np.zeros(11, np.float32))


def test_spec_ratio_lookup_and_calibration() -> None:
    spec = CompressionSpec(method="ScaleCom", layer_ratios={"FC": 300.0})
    assert spec.method == "scalecom"
    assert spec.ratio_for("fc") == 300.0
    assert spec.ratio_for("conv") == 100.0  # the method default
    rng = np.random.default_rng(6)
    steps = [[_heavy_tailed(rng, 30_000), _heavy_tailed(rng, 5000)] for _ in range(4)]
    calibrated = calibrate_compression({"conv": steps, "fc": steps}, launch_overhead_us=5.0)
    assert calibrated.ratio_for("fc") > 3 * calibrated.ratio_for("conv")
    assert calibrated.launch_overhead_us == 5.0
