"""train_network: learns, stops early, resumes, writes safetensors, accumulates, runs bf16 on CPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from signlang.training.config import OptimConfig, TrainConfig
from signlang.training.trainer import (
    BEST_NAME,
    LAST_NAME,
    STATE_NAME,
    load_weights,
    train_network,
    warmup_cosine,
)

torch.set_num_threads(1)


class TinyNet(nn.Module):
    """Masked mean over frames -> small MLP: ``(B, T, F), (B, T) -> (B, C)``."""

    def __init__(self, n_features: int, n_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_features, 16), nn.GELU(), nn.Dropout(dropout), nn.Linear(16, n_classes))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.to(x.dtype)[..., None]
        pooled = (x * m).sum(1) / m.sum(1).clamp(min=1.0)
        return self.net(pooled)


def featurize(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hands' x/y of the 75 points as features (NaN -> 0), mask = pose present."""
    mask = ~np.all(np.isnan(X[..., 0]), axis=-1)
    return np.nan_to_num(X[..., :2]).reshape(X.shape[0], X.shape[1], -1), mask


def separable(n: int = 96, t: int = 6, n_classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks whose wrist x encodes the class (plus noise); some frames missing (NaN)."""
    rng = np.random.default_rng(seed)
    y = np.tile(np.arange(n_classes), n // n_classes + 1)[:n]
    X = rng.normal(0, 0.05, size=(n, t, 75, 3)).astype(np.float32)
    X[:, :, 15, 0] += y[:, None] * 1.0
    X[:, -1] = np.nan  # a missing last frame
    return X, y


F_DIM = 150


def tiny_cfg(**kw: object) -> OptimConfig:
    base = dict(epochs=20, batch_size=16, lr=2e-2, warmup_frac=0.0, label_smoothing=0.0, patience=50, weight_decay=0.0)
    base.update(kw)
    return OptimConfig(**base)  # type: ignore[arg-type]


def net(seed: int = 0, dropout: float = 0.0, n_classes: int = 3) -> TinyNet:
    torch.manual_seed(seed)
    return TinyNet(F_DIM, n_classes, dropout)


def test_learns_separable_set() -> None:
    X, y = separable()
    model = net()
    res = train_network(model, X[:72], y[:72], X[72:], y[72:], tiny_cfg(epochs=15), featurize=featurize, quiet=True)
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < 0.5 * losses[0]
    assert res.best_score == 1.0 and res.history[res.best_epoch - 1]["val_accuracy"] == 1.0
    assert set(res.history[0]) >= {"train_loss", "val_loss", "val_accuracy", "val_macro_f1", "lr", "epoch_seconds"}
    with torch.no_grad():
        x, m = featurize(X[72:])
        pred = model(torch.from_numpy(x), torch.from_numpy(m)).argmax(1).numpy()
    assert (pred == y[72:]).all()  # the restored best weights are in the module


def test_early_stopping_on_plateau() -> None:
    X, _ = separable()
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, len(X))  # labels unrelated to X: validation F1 cannot keep improving
    res = train_network(net(), X[:72], y[:72], X[72:], y[72:], tiny_cfg(epochs=40, patience=3), featurize=featurize, quiet=True)
    assert res.stop_reason == "early_stopping"
    assert res.epochs_run < 40 and res.epochs_run == res.best_epoch + 3


def test_callback_stops_and_sees_metrics() -> None:
    X, y = separable()
    seen: list[tuple[int, float]] = []

    def cb(epoch: int, metrics: dict[str, float]) -> bool:
        seen.append((epoch, metrics["val_macro_f1"]))
        return epoch == 2

    res = train_network(net(), X[:72], y[:72], X[72:], y[72:], tiny_cfg(epochs=10), featurize=featurize, callbacks=[cb], quiet=True)
    assert [e for e, _ in seen] == [1, 2] and res.stop_reason == "callback" and res.epochs_run == 2

    class Prune:
        def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
            raise RuntimeError(f"pruned at {epoch}")

    with pytest.raises(RuntimeError, match="pruned at 1"):
        train_network(net(), X[:72], y[:72], X[72:], y[72:], tiny_cfg(epochs=3), featurize=featurize, callbacks=[Prune()], quiet=True)


def test_checkpoints_are_safetensors_and_resume_continues(tmp_path: Path) -> None:
    X, y = separable()
    ck = tmp_path / "ck"
    r1 = train_network(net(), X[:72], y[:72], X[72:], y[72:], tiny_cfg(epochs=3), featurize=featurize, checkpoint_dir=ck, quiet=True)
    assert sorted(p.name for p in ck.iterdir()) == sorted([BEST_NAME, LAST_NAME, STATE_NAME])
    for name in (BEST_NAME, LAST_NAME):
        raw = (ck / name).read_bytes()
        header_len = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8 : 8 + header_len])  # the safetensors layout: u64 length + JSON header
        assert "__metadata__" in header and not raw.startswith((b"\x80", b"PK"))  # not pickle / torch zip
    tensors, meta = load_weights(ck / LAST_NAME)
    assert any(k.startswith("optim.") for k in tensors) and json.loads(meta["trainer_state"])["epoch"] == 3
    assert json.loads((ck / STATE_NAME).read_text())["optimizer_step"] == r1.optimizer_steps == 3 * 5

    # resume with a longer schedule into a fresh module: the epoch count continues from 3
    fresh = net(seed=123)
    r2 = train_network(fresh, X[:72], y[:72], X[72:], y[72:], tiny_cfg(epochs=5), featurize=featurize, checkpoint_dir=ck, resume=True, quiet=True)
    assert r2.epochs_run == 5 and [h["epoch"] for h in r2.history] == [1, 2, 3, 4, 5]
    assert r2.history[:3] == r1.history and r2.optimizer_steps == 5 * 5

    # resuming is exact: 3 + resume-to-5 equals an uninterrupted 5-epoch run with the same schedule
    ck2 = tmp_path / "ck2"
    stop_at_3 = lambda epoch, metrics: epoch == 3  # noqa: E731 - interrupt a 5-epoch schedule
    train_network(net(), X[:72], y[:72], X[72:], y[72:], tiny_cfg(epochs=5), featurize=featurize, checkpoint_dir=ck2, callbacks=[stop_at_3], quiet=True)
    a = train_network(net(seed=5), X[:72], y[:72], X[72:], y[72:], tiny_cfg(epochs=5), featurize=featurize, checkpoint_dir=ck2, resume=True, quiet=True)
    straight = net()
    b = train_network(straight, X[:72], y[:72], X[72:], y[72:], tiny_cfg(epochs=5), featurize=featurize, quiet=True)
    assert [h["train_loss"] for h in a.history] == pytest.approx([h["train_loss"] for h in b.history], rel=1e-5)


def test_resume_rejects_corrupt_checkpoint(tmp_path: Path) -> None:
    X, y = separable()
    (tmp_path / LAST_NAME).write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=LAST_NAME):
        train_network(net(), X[:72], y[:72], X[72:], y[72:], tiny_cfg(epochs=1), featurize=featurize, checkpoint_dir=tmp_path, resume=True, quiet=True)


def _first_updates(batch_size: int, accumulation: int, steps: int = 3) -> dict[str, torch.Tensor]:
    X, y = separable(n=64)
    model = net(seed=3)
    cfg = tiny_cfg(epochs=1, batch_size=batch_size, accumulation_steps=accumulation, lr=1e-2, grad_clip=0.5)
    train_network(model, X, y, None, None, cfg, featurize=featurize, max_steps=steps, quiet=True)
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_gradient_accumulation_matches_big_batch() -> None:
    big = _first_updates(16, 1)
    acc = _first_updates(8, 2)
    small = _first_updates(8, 1, steps=3)
    start = net(seed=3).state_dict()
    for k in big:
        assert not torch.equal(big[k], start[k])
        torch.testing.assert_close(acc[k], big[k], rtol=1e-5, atol=1e-6)
    # the comparison can fail: three steps of batch 8 without accumulation land elsewhere
    assert any(not torch.allclose(small[k], big[k], rtol=1e-5, atol=1e-6) for k in big)


def test_bf16_autocast_on_cpu() -> None:
    X, y = separable()
    cfg = TrainConfig(optim=tiny_cfg(epochs=6, amp=True), device="cpu")
    model = net()
    res = train_network(model, X[:72], y[:72], X[72:], y[72:], cfg, featurize=featurize, quiet=True)
    assert all(np.isfinite(h["train_loss"]) for h in res.history)
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    assert next(model.parameters()).dtype == torch.float32  # autocast, not a cast of the weights


def test_augmentation_is_applied_and_seeded() -> None:
    X, y = separable(n=48)
    calls: list[int] = []

    def jitter(clip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        calls.append(clip.shape[0])
        return clip + rng.normal(0, 0.01, clip.shape).astype(np.float32)

    runs = []
    for _ in range(2):
        model = net()
        train_network(model, X, y, None, None, tiny_cfg(epochs=2), featurize=featurize, augment=jitter, quiet=True)
        runs.append(model.state_dict())
    assert len(calls) == 2 * 2 * 48  # every clip, every epoch, both runs
    for k in runs[0]:
        assert torch.equal(runs[0][k], runs[1][k])  # same seed -> same augmentation -> same weights


def test_time_changing_augmentation_is_resampled_to_the_batch_length() -> None:
    """time_warp / frame_drop change T per clip; the collate resamples back so batches stack."""
    from signlang.features.augment import build_augmentation

    X, y = separable(n=32)
    augment = build_augmentation([{"name": "time_warp", "p": 1.0, "min_speed": 0.5, "max_speed": 1.5}, {"name": "frame_drop", "p": 1.0}])
    seen: list[int] = []

    def featurize_and_record(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        seen.append(batch.shape[1])
        return featurize(batch)

    train_network(net(), X, y, None, None, tiny_cfg(epochs=1), featurize=featurize_and_record, augment=augment, quiet=True)
    assert seen and set(seen) == {X.shape[1]}


def test_augmented_copies_are_featurised_once_and_drawn_per_epoch() -> None:
    """optim.augment_copies = K: K augmented copies featurised once (not per batch), drawn from each
    epoch; the run is reproducible, and copy 0 is the unaugmented training set."""
    from signlang.training.trainer import featurize_all, featurize_augmented_copies

    X, y = separable(n=48)
    augmented: list[int] = []
    featurised: list[int] = []

    def jitter(clip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        augmented.append(1)
        return clip + rng.normal(0, 0.05, clip.shape).astype(np.float32)

    def counting_featurize(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        featurised.append(len(batch))
        return featurize(batch)

    pool_f, pool_m = featurize_augmented_copies(featurize, X, jitter, 2, seed=3)
    assert pool_f.shape == (3, 48, X.shape[1], F_DIM) and pool_m.shape == (3, 48, X.shape[1])
    torch.testing.assert_close(pool_f[0], featurize_all(featurize, X)[0])
    assert not torch.equal(pool_f[1], pool_f[0]) and not torch.equal(pool_f[1], pool_f[2])

    augmented.clear()
    runs = []
    for _ in range(2):
        model = net()
        train_network(model, X, y, None, None, tiny_cfg(epochs=4, augment_copies=2, frame_mask=0.3),
                      featurize=counting_featurize, augment=jitter, quiet=True)
        runs.append(model.state_dict())
    assert len(augmented) == 2 * 2 * 48  # two copies of 48 clips, once per run (not per epoch)
    assert sum(featurised) == 2 * 3 * 48  # original + 2 copies, once per run
    for k in runs[0]:
        assert torch.equal(runs[0][k], runs[1][k])


def test_frame_mask_hides_frames_but_never_empties_a_clip() -> None:
    from signlang.training.trainer import mask_frames

    mask = torch.ones(200, 32, dtype=torch.bool)
    mask[:, 20:] = False  # padding stays padding
    mask[0] = False
    mask[0, 5] = True  # one detected frame only: it must survive
    out = mask_frames(mask, 0.5, torch.Generator().manual_seed(0))
    assert not (out & ~mask).any()  # nothing missing becomes present
    assert out.sum(1).min() >= 1 and out[0, 5]
    hidden = (mask & ~out).sum() / mask.sum()
    assert 0.4 < float(hidden) < 0.6
    assert torch.equal(out, mask_frames(mask, 0.5, torch.Generator().manual_seed(0)))
    assert torch.equal(mask_frames(mask, 0.0, torch.Generator()), mask)


def test_bad_inputs_are_named() -> None:
    X, y = separable(n=12)
    with pytest.raises(ValueError, match="X_train.*one label per clip"):
        train_network(net(), X, y[:5], None, None, tiny_cfg(epochs=1), featurize=featurize, quiet=True)
    with pytest.raises(ValueError, match="y_train: label 7 is out of range"):
        train_network(net(), X, np.full(12, 7), None, None, tiny_cfg(epochs=1), featurize=featurize, quiet=True)
    with pytest.raises(ValueError, match="y_val: label 5 is out of range"):
        train_network(net(), X, y, X[:2], np.array([0, 5]), tiny_cfg(epochs=1), featurize=featurize, quiet=True)
    with pytest.raises(ValueError, match="X_val.*integer"):
        train_network(net(), X, y, X, y.astype(float), tiny_cfg(epochs=1), featurize=featurize, quiet=True)


def test_warmup_cosine_schedule() -> None:
    f = warmup_cosine(100, 0.1)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(55) < f(20) and f(100) == pytest.approx(0.01)


# ----------------------------------------------------------------------------------------------
# NeuralSequenceClassifier (the sklearn estimator over the registry networks)


def _estimator_cfg(**over: object):  # noqa: ANN202 - TrainConfig
    from signlang.training.config import default_config, merge_overrides

    base = {
        "optim.epochs": 12, "optim.batch_size": 16, "optim.lr": 5e-3, "optim.patience": 12, "augment": [],
        "transformer.d_model": 16, "transformer.n_heads": 2, "transformer.n_layers": 1, "transformer.dim_ff": 32,
        "transformer.dropout": 0.0, "bilstm.hidden": 8, "bilstm.dropout": 0.0, "seed": 0,
    }
    base.update(over)
    return merge_overrides(default_config(cuda=False), base)


@pytest.mark.parametrize("arch", ["transformer", "bilstm"])
def test_estimator_fits_registry_network(arch: str) -> None:
    from sklearn.base import clone

    from signlang.models.base import NeuralSequenceModel
    from signlang.training.estimator import NeuralSequenceClassifier

    X, y = separable(n=60, t=6)
    X[:, :, 33:54, 0] += y[:, None, None] * 0.5  # the left hand's position (a real feature) tells the class
    labels = np.array(["a", "b", "c"])[y]  # any label type: classes_ are the sorted labels
    est = NeuralSequenceClassifier.from_config(_estimator_cfg(), arch)
    params = est.get_params()
    twin = clone(est)
    assert twin.get_params() == params  # clone-safe: params stored unchanged
    est.fit(X, labels)
    assert est.get_params() == params and isinstance(est, NeuralSequenceModel)
    assert list(est.classes_) == ["a", "b", "c"] and est.module_.config["n_classes"] == 3
    assert 1 <= est.best_epoch_ <= len(est.history_) <= 12
    assert (est.predict(X) == labels).mean() >= 0.9
    assert est.predict_proba(X[:5]).shape == (5, 3)


def test_estimator_rejects_unknown_validation_labels() -> None:
    from signlang.training.estimator import NeuralSequenceClassifier

    X, y = separable(n=30, t=4)
    est = NeuralSequenceClassifier.from_config(_estimator_cfg(**{"optim.epochs": 1}), "bilstm")
    with pytest.raises(ValueError, match="y_val has labels not in the training labels"):
        est.fit(X, y, X[:4], np.array([0, 1, 2, 9]))
    with pytest.raises(ValueError, match=r"X: expected normalised landmarks"):
        est.fit(X[:, :, :10], y)


def test_stratified_holdout_keeps_every_class() -> None:
    from signlang.training.estimator import stratified_holdout

    y = np.array([0] * 20 + [1] * 10 + [2] * 3 + [3])
    fit, val = stratified_holdout(y, 0.15, seed=0)
    assert np.intersect1d(fit, val).size == 0 and len(fit) + len(val) == len(y)
    assert [int((y[val] == c).sum()) for c in range(4)] == [3, 2, 1, 0]  # round(15%), >= 1, single clip stays
    assert set(y[fit]) == {0, 1, 2, 3}
    again = stratified_holdout(y, 0.15, seed=0)
    assert np.array_equal(again[1], val) and not np.array_equal(stratified_holdout(y, 0.15, seed=1)[1], val)
