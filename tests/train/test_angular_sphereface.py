"""SphereFace's A-Softmax: psi, the annealing schedule, the softmax limit, finite gradients, a loss that falls."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from stream.errors import FacestreamError
from stream.models.preprocess import to_input_tensor
from stream.train import backbones
from stream.train.loop import TrainConfig, _check, _input_spec
from tests.train.synthetic import fit_head, identity_crops

torch = pytest.importorskip("torch", reason="SphereFace's loss needs PyTorch (pip install 'facestream[train]')")

from stream.train.angular import Annealing, chebyshev, psi, sphereface_head  # noqa: E402


@pytest.mark.parametrize("m", [1, 2, 3, 4, 5])
def test_chebyshev_is_cos_m_theta(m):
    theta = torch.linspace(0, math.pi, 181, dtype=torch.float64)
    np.testing.assert_allclose(chebyshev(torch.cos(theta), m), torch.cos(m * theta), atol=1e-12)


@pytest.mark.parametrize("m", [1, 2, 3, 4, 5])
def test_psi_is_continuous_and_decreasing_on_0_pi(m):
    theta = torch.linspace(0, math.pi, 20001, dtype=torch.float64)
    values = psi(torch.cos(theta), m).numpy()
    assert values[0] == pytest.approx(1.0)
    assert values[-1] == pytest.approx(-(2 * m - 1))  # (-1)^(m-1) cos(m pi) - 2 (m - 1)
    steps = np.diff(values)
    assert (steps <= 1e-12).all()  # monotonic: never rises
    # continuous: no step larger than the steepest slope (m) times the grid spacing allows
    assert np.abs(steps).max() <= m * (math.pi / 20000) * 1.01
    # at the piece boundaries k pi / m both sides meet
    for k in range(1, m):
        edge = torch.tensor([k * math.pi / m - 1e-9, k * math.pi / m + 1e-9], dtype=torch.float64)
        left, right = psi(torch.cos(edge), m).numpy()
        assert left == pytest.approx(right, abs=1e-6) and left == pytest.approx(-2 * k + 1, abs=1e-6)


def test_psi_with_margin_1_is_the_cosine():
    cos = torch.linspace(-1, 1, 101, dtype=torch.float64)
    np.testing.assert_allclose(psi(cos, 1), cos, atol=1e-12)


def test_the_annealing_schedule_is_the_papers():
    schedule = Annealing()
    assert schedule(0) == 1000.0
    assert schedule(1) == pytest.approx(1000 / 1.12)
    assert schedule(100) == pytest.approx(1000 / 13)
    # 1000 / (1 + 0.12 i) reaches 5 at i = (200 - 1) / 0.12 = 1658.3; from there it stays at lambda_min
    assert schedule(1658) > 5.0 and schedule(1659) == 5.0 and schedule(10**6) == 5.0
    lams = [schedule(i) for i in range(0, 3000, 7)]
    assert all(a >= b for a, b in itertools.pairwise(lams))
    assert Annealing(base=10, gamma=1, power=2, lambda_min=0.5)(1) == pytest.approx(2.5)


def test_the_head_steps_the_schedule_only_in_training_and_keeps_it_in_its_state():
    head = sphereface_head(8, classes=3)
    x, y = torch.randn(4, 8), torch.tensor([0, 1, 2, 0])
    for _ in range(3):
        head(x, y)
    assert int(head.iteration) == 3
    head.eval()
    head(x, y)
    assert int(head.iteration) == 3
    again = sphereface_head(8, classes=3)
    again.load_state_dict(head.state_dict())  # a resumed run continues the schedule
    assert int(again.iteration) == 3


def test_lambda_to_infinity_is_plain_softmax_on_normalised_weights():
    torch.manual_seed(0)
    head = sphereface_head(16, classes=5)
    x, y = torch.randn(6, 16, dtype=torch.float64) * 3, torch.tensor([0, 1, 2, 3, 4, 0])
    head = head.double()
    with torch.no_grad():
        plain = x @ torch.nn.functional.normalize(head.weight, dim=1).T  # |x| cos(theta_j), no bias
    np.testing.assert_allclose(head.logits(x, y, 1e12).detach(), plain, rtol=1e-9, atol=1e-9)
    # lambda 0: the true class gets |x| psi(theta_y), the others stay plain
    margin = head.logits(x, y, 0.0).detach()
    norm = x.norm(dim=1)
    cos_y = plain.gather(1, y[:, None])[:, 0] / norm
    np.testing.assert_allclose(margin.gather(1, y[:, None])[:, 0], norm * psi(cos_y, 4), rtol=1e-9)
    others = torch.ones_like(margin, dtype=torch.bool).scatter(1, y[:, None], False)
    np.testing.assert_allclose(margin[others], plain[others], rtol=1e-12)
    # the margin only ever lowers the true class's logit (psi(theta) <= cos(theta))
    assert (margin.gather(1, y[:, None]) <= plain.gather(1, y[:, None]) + 1e-12).all()


def test_gradients_are_finite_even_at_cos_plus_minus_one():
    head = sphereface_head(4, classes=3)
    with torch.no_grad():
        head.weight.copy_(torch.eye(3, 4))
    # features exactly on (theta 0) and opposite (theta pi) their class's weight, and one at zero norm
    x = torch.tensor([[2.0, 0, 0, 0], [0, -3.0, 0, 0], [0, 0, 0, 0]], requires_grad=True)
    loss, _ = head(x, torch.tensor([0, 1, 2]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all() and torch.isfinite(head.weight.grad).all()


def test_margin_must_be_a_small_integer():
    with pytest.raises(ValueError, match="margin 7"):
        sphereface_head(8, 3, margin=7)
    with pytest.raises(FacestreamError, match="--margin 0"):
        _check(TrainConfig(name="x", dataset=None, loss="sphereface", margin=0))


def test_sphereface_needs_identity_labels():
    with pytest.raises(FacestreamError, match="--loss sphereface needs identity labels"):
        _check(TrainConfig(name="x", from_tracks="t", loss="sphereface"))


@pytest.mark.slow  # MobileFaceNet steps: tens of seconds on a loaded 2-core machine
def test_a_short_training_run_on_the_synthetic_set_lowers_the_loss():
    torch.manual_seed(0)
    model = backbones.build("mobilefacenet")
    head = sphereface_head(128, classes=3)
    spec = _input_spec(backbones.spec_for("mobilefacenet"))
    crops, labels = identity_crops(3, 4, seed=2)
    x, y = torch.from_numpy(to_input_tensor(crops, spec)), torch.from_numpy(labels)
    losses, actives = fit_head([model], head, x, y, steps=6, lr=1e-3)
    assert all(0.0 <= active <= 1.0 for active in actives)
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0], losses
    assert int(head.iteration) == 6


@pytest.mark.slow  # tiny, but torch's threads crawl on a loaded machine (seconds)
def test_the_full_margin_alone_still_trains():
    """lambda 0 from the first step (no annealing): the hard A-Softmax objective, on a linear embedding of
    the synthetic crops (the loss does not care what makes the features)."""
    torch.manual_seed(0)
    crops, labels = identity_crops(4, 6, size=16, seed=4)
    x = torch.from_numpy(crops.reshape(len(crops), -1).astype(np.float32) / 255 - 0.5)
    y = torch.from_numpy(labels)
    embed = torch.nn.Linear(x.shape[1], 16)
    head = sphereface_head(16, classes=4, annealing=Annealing(base=0.0, lambda_min=0.0))
    losses, actives = fit_head([embed], head, x, y, steps=40, lr=1e-2)
    assert losses[-1] < 0.5 * losses[0], losses
    assert actives[-1] <= actives[0] and actives[-1] < 0.5


@pytest.mark.slow
def test_train_with_sphereface_checkpoints_the_schedule_and_resumes_it(tmp_path, monkeypatch):
    """The loop end to end with `--loss sphereface --margin 3`; the faces are the synthetic set (the
    loop's photo loading, tested in test_data.py, stands aside)."""
    from stream.models.store import ModelStore
    from stream.train import loop
    from stream.train.data import FaceSet

    crops, labels = identity_crops(3, 6, seed=5)
    faces = FaceSet(crops, labels, np.array(["a", "b", "c"]))
    monkeypatch.setattr(loop, "load_faces", lambda cfg, template, workdir: faces)
    store = ModelStore(tmp_path / "engines")
    cfg = TrainConfig(name="sphere-mfn", dataset=tmp_path, loss="sphereface", margin=3, p=3, k=2, epochs=1,
                      max_batches=1, progress=False)
    first = loop.train(cfg, store)
    assert first.history[-1].loss > 0 and math.isfinite(first.history[-1].loss)
    state = torch.load(store.root / "training" / "sphere-mfn" / loop.CHECKPOINT, weights_only=True)
    assert state["loss"] == "sphereface" and int(state["head"]["iteration"]) == 1
    cfg.epochs, cfg.resume = 2, True
    second = loop.train(cfg, store)
    assert [h.epoch for h in second.history] == [1, 2]
    state = torch.load(store.root / "training" / "sphere-mfn" / loop.CHECKPOINT, weights_only=True)
    assert int(state["head"]["iteration"]) == 2  # the annealing went on from where it was
    assert second.onnx_diff <= 1e-4 and store.get("sphere-mfn").manifest.embedding_size == 128
