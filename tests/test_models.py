"""Networks and estimators of the models stage: registry, transformer, bilstm, XGBoost, wrapper."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from signlang.models.bilstm import output_zoneout
from signlang.models.registry import MODELS, build_model, list_models, register_model

torch.set_num_threads(1)

SMALL = {
    "transformer": dict(d_model=32, n_heads=4, n_layers=2, dim_feedforward=64, dropout=0.1),
    "bilstm": dict(hidden=24, dropout=0.1),
}


def _synthetic_frames(n_per_class: int = 8, n_classes: int = 3, t: int = 16, f: int = 12, seed: int = 0):
    """Random per-frame features with a class-specific temporal pattern; ragged lengths via the mask."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), n_per_class)
    time = np.linspace(0, 1, t)[None, :, None]
    freq = (1 + y)[:, None, None]
    chan = np.arange(f)[None, None, :]
    x = np.sin(2 * np.pi * freq * time + chan) + 0.5 * rng.normal(size=(len(y), t, f))
    lengths = rng.integers(t // 2, t + 1, size=len(y))
    mask = np.arange(t)[None, :] < lengths[:, None]
    x = np.where(mask[..., None], x, 0.0)
    return torch.tensor(x, dtype=torch.float32), torch.tensor(mask), torch.tensor(y)


# --- registry -----------------------------------------------------------------------------------
def test_registry_lists_builtins_and_builds_with_config() -> None:
    assert {"transformer", "bilstm"} <= set(list_models())
    for name, kw in SMALL.items():
        net = build_model(name, n_features=7, n_classes=4, **kw)
        assert net.config["n_features"] == 7 and net.config["n_classes"] == 4
        rebuilt = build_model(name, **net.config)
        assert rebuilt.config == net.config


def test_registry_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match=r"unknown model 'nope'.*bilstm.*transformer"):
        build_model("nope", n_features=3, n_classes=2)
    with pytest.raises(ValueError, match="hidden_size"):
        build_model("bilstm", n_features=3, n_classes=2, hidden_size=8)
    with pytest.raises(ValueError, match="n_classes"):
        build_model("transformer", n_features=3)

    class Other(nn.Module):
        pass

    with pytest.raises(ValueError, match="already taken"):
        register_model("transformer")(Other)
    assert MODELS.get("transformer").cls.__name__ == "SignTransformer"


# --- networks -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["transformer", "bilstm"])
def test_network_overfits_tiny_set(name: str) -> None:
    torch.manual_seed(0)
    x, mask, y = _synthetic_frames()
    net = build_model(name, n_features=x.shape[-1], n_classes=3, **SMALL[name])
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(150):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(net(x, mask), y)
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        acc = (net(x, mask).argmax(1) == y).float().mean().item()
    assert acc == 1.0, f"{name} reached train accuracy {acc} (last loss {loss.item():.3f})"


@pytest.mark.parametrize("name", ["transformer", "bilstm"])
def test_padding_and_missing_frames_do_not_change_logits(name: str) -> None:
    torch.manual_seed(1)
    x, mask, _ = _synthetic_frames(n_per_class=2)
    mask[0, 3] = False  # a missing frame inside clip 0
    net = build_model(name, n_features=x.shape[-1], n_classes=3, **SMALL[name]).eval()
    with torch.no_grad():
        ref = net(x, mask)
        padded = net(torch.cat([x, torch.randn(x.shape[0], 9, x.shape[2]) * 5], 1),
                     torch.cat([mask, torch.zeros(mask.shape[0], 9, dtype=torch.bool)], 1))
        x_alt = x.clone()
        x_alt[~mask] = 42.0  # garbage where the mask is False (padding and the missing frame)
        altered = net(x_alt, mask)
        alone = net(x[:1, : int(mask[0].nonzero().max()) + 1], mask[:1, : int(mask[0].nonzero().max()) + 1])
    torch.testing.assert_close(padded, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(altered, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(alone[0], ref[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["transformer", "bilstm"])
def test_all_missing_clip_gives_finite_logits_and_eval_is_deterministic(name: str) -> None:
    net = build_model(name, n_features=5, n_classes=4, **SMALL[name]).eval()
    x = torch.zeros(2, 6, 5)
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[1, :4] = True
    x[1] = torch.randn(6, 5)
    with torch.no_grad():
        a, b = net(x, mask), net(x, mask)
    assert a.shape == (2, 4) and torch.isfinite(a).all()
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    with pytest.raises(ValueError, match="mask must have shape"):
        net(x, mask[:, :3])


def test_transformer_length_limits() -> None:
    net = build_model("transformer", n_features=4, n_classes=2, max_len=8, **{k: v for k, v in SMALL["transformer"].items()}).eval()
    assert net(torch.randn(1, 3, 4), torch.ones(1, 3, dtype=torch.bool)).shape == (1, 2)
    with pytest.raises(ValueError, match="max_len=8"):
        net(torch.randn(1, 9, 4), torch.ones(1, 9, dtype=torch.bool))


def test_output_zoneout_keeps_previous_step_only_in_training() -> None:
    torch.manual_seed(0)
    h = torch.randn(2, 7, 6)
    lengths = torch.tensor([7, 4])
    h[1, 4:] = 0.0
    assert output_zoneout(h, lengths, 0.5, training=False) is h
    z = output_zoneout(h, lengths, 0.5, training=True)
    fwd_prev = torch.cat([torch.zeros(2, 1, 3), h[:, :-1, :3]], 1)
    bwd_prev = torch.cat([h[:, 1:, 3:], torch.zeros(2, 1, 3)], 1)
    prev = torch.cat([fwd_prev, bwd_prev], -1)
    same, kept = torch.isclose(z, h), torch.isclose(z, prev)
    assert torch.all(same | kept)
    assert (~same).any() and (~kept).any()  # with p = 0.5 both outcomes occur
    assert torch.all(z[1, 4:] == 0)


# --- XGBoost ------------------------------------------------------------------------------------
def _tabular(seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(4), 15)
    X = rng.normal(size=(len(y), 6)).astype(np.float32)
    X[:, 0] += 3 * y
    X[::5, 2] = np.nan
    return X, y


def test_xgboost_missing_class_in_fold_still_gives_all_columns(tmp_path) -> None:
    from signlang.models.trees import XGBoostClassifier

    X, y = _tabular()
    train = y != 2
    clf = XGBoostClassifier(n_estimators=30, learning_rate=0.3, classes=[0, 1, 2, 3], n_jobs=1).fit(X[train], y[train])
    proba = clf.predict_proba(X)
    assert proba.shape == (len(y), 4)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)
    assert proba[y == 2, 2].max() < 0.1  # never seen -> low probability, but a column exists
    assert (clf.predict(X[train]) == y[train]).mean() == 1.0
    path = clf.save_json(tmp_path / "m.json")
    back = XGBoostClassifier.load_json(path)
    np.testing.assert_array_equal(back.predict_proba(X), proba)
    assert back.get_params()["n_estimators"] == 30 and back.classes_.tolist() == [0, 1, 2, 3]


def test_xgboost_errors_and_early_stopping(tmp_path) -> None:
    from signlang.models.trees import PooledXGBoostClassifier, XGBoostClassifier

    X, y = _tabular()
    with pytest.raises(ValueError, match=r"labels \[3\] are not among"):
        XGBoostClassifier(n_estimators=2, classes=[0, 1, 2]).fit(X, y)
    with pytest.raises(ValueError, match="2-D"):
        XGBoostClassifier(n_estimators=2).fit(X[:, :, None], y)
    es = XGBoostClassifier(n_estimators=400, learning_rate=0.5, early_stopping_rounds=5, n_jobs=1)
    es.fit(X[::2], y[::2], eval_set=(X[1::2], y[1::2]))
    assert es.best_iteration_ < 399
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ValueError, match="bad.json"):
        XGBoostClassifier.load_json(bad)
    es.save_json(tmp_path / "plain.json")
    with pytest.raises(ValueError, match="holds a XGBoostClassifier"):
        PooledXGBoostClassifier.load_json(tmp_path / "plain.json")
