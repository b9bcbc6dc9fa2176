"""Strict YAML configs: unknown keys and wrong types fail with the dotted key; shipped files load."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest
import yaml

from signlang.training.config import (
    CONFIG_DIR,
    TrainConfig,
    config_from_dict,
    config_to_dict,
    default_config,
    flatten_config,
    load_config,
    merge_overrides,
    save_config,
)


def test_mistyped_key_names_full_key_and_suggests(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"optim\.lrr.*did you mean 'optim\.lr'"):
        config_from_dict({"optim": {"lrr": 1e-3}})
    p = tmp_path / "bad.yaml"
    p.write_text("transformer:\n  d_modle: 32\n")
    with pytest.raises(ValueError) as info:
        load_config(p)
    msg = str(info.value)
    assert str(p) in msg and "transformer.d_modle" in msg and "transformer.d_model" in msg


def test_unknown_section_and_override_key() -> None:
    with pytest.raises(ValueError, match=r"'optimm'.*'optim'"):
        config_from_dict({"optimm": {}})
    with pytest.raises(ValueError, match=r"optim\.lrr.*optim\.lr"):
        merge_overrides(TrainConfig(), {"optim.lrr": 0.1})


@pytest.mark.parametrize(
    ("d", "key", "expected"),
    [
        ({"optim": {"lr": "fast"}}, "optim.lr", "float"),
        ({"optim": {"epochs": 2.5}}, "optim.epochs", "int"),
        ({"optim": {"amp": 1}}, "optim.amp", "bool"),
        ({"optim": {"epochs": True}}, "optim.epochs", "int"),
        ({"device": "tpu"}, "device", "'cuda'"),
        ({"ensemble": {"models": "transformer"}}, "ensemble.models", "list[str]"),
        ({"data": {"feature_blocks": ["coords", 3]}}, "data.feature_blocks[1]", "str"),
        ({"transformer": 5}, "transformer", "mapping"),
    ],
)
def test_wrong_type_names_key_and_type(d: dict, key: str, expected: str) -> None:
    with pytest.raises(ValueError) as info:
        config_from_dict(d)
    assert repr(key) in str(info.value) and expected in str(info.value)


def test_range_checks() -> None:
    with pytest.raises(ValueError, match=r"transformer.*n_heads"):
        config_from_dict({"transformer": {"d_model": 30, "n_heads": 4}})
    with pytest.raises(ValueError, match="optim.accumulation_steps"):
        config_from_dict({"optim": {"accumulation_steps": 0}})
    with pytest.raises(ValueError, match=r"augment\[0\]"):
        config_from_dict({"augment": [{"p": 0.5}]})


def test_ints_widen_to_float_and_yaml11_exponent() -> None:
    cfg = config_from_dict({"optim": {"lr": 1, "weight_decay": "1e-4"}})
    assert isinstance(cfg.optim.lr, float) and cfg.optim.lr == 1.0
    assert cfg.optim.weight_decay == pytest.approx(1e-4)


@pytest.mark.parametrize("name", ["train", "cpu"])
def test_shipped_configs_load(name: str) -> None:
    cfg = load_config(CONFIG_DIR / f"{name}.yaml")
    assert isinstance(cfg, TrainConfig)
    # every key in the file is a real key: the loaded config has exactly the file's values
    raw = yaml.safe_load((CONFIG_DIR / f"{name}.yaml").read_text())
    assert cfg.optim.batch_size == raw["optim"]["batch_size"]
    assert cfg.data.target_frames == raw["data"]["target_frames"]


def test_default_config_follows_hardware() -> None:
    gpu, cpu = default_config(cuda=True), default_config(cuda=False)
    assert (gpu.transformer.d_model, gpu.transformer.n_heads, gpu.transformer.n_layers) == (256, 8, 6)
    assert gpu.data.target_frames == 64 and gpu.optim.lr == pytest.approx(1e-4) and gpu.bilstm.hidden == 256
    assert gpu.xgboost.max_depth == 7 and gpu.xgboost.learning_rate == pytest.approx(0.01)
    assert cpu.transformer.d_model < gpu.transformer.d_model and cpu.data.target_frames == 32
    assert cpu.optim.lr == pytest.approx(1e-3)


def test_round_trip_and_overrides(tmp_path: Path) -> None:
    cfg = default_config(cuda=False)
    again = config_from_dict(config_to_dict(cfg))
    assert again == cfg
    p = tmp_path / "c.yaml"
    save_config(cfg, p)
    assert load_config(p) == cfg
    new = merge_overrides(cfg, {"optim.lr": 3e-3, "seed": 7, "ensemble.models": ["xgboost"]})
    assert (new.optim.lr, new.seed, new.ensemble.models) == (3e-3, 7, ["xgboost"])
    assert cfg.optim.lr == pytest.approx(1e-3)  # the original is untouched
    with pytest.raises(ValueError, match="optim.lr"):
        merge_overrides(cfg, {"optim.lr": "x"})
    flat = flatten_config(cfg)
    assert flat["optim.lr"] == cfg.optim.lr and flat["transformer.d_model"] == cfg.transformer.d_model


def test_augmentation_entries_are_validated_at_load() -> None:
    from signlang.training.config import config_from_dict

    with pytest.raises(ValueError, match=r"augment\[0\].*'scale'.*unknown parameters \['low'\]"):
        config_from_dict({"augment": [{"name": "scale", "low": 0.9}]})
    with pytest.raises(ValueError, match=r"augment\[1\].*'frame_dropout'"):
        config_from_dict({"augment": [{"name": "rotate"}, {"name": "frame_dropout"}]})


def test_model_sections_are_the_constructors_keywords_with_old_keys_as_aliases() -> None:
    from signlang.models.transformer import SignTransformer

    # defaults live in the constructor only
    defaults = {k: p.default for k, p in inspect.signature(SignTransformer.__init__).parameters.items() if k not in ("self", "n_features", "n_classes")}
    assert dataclasses.asdict(TrainConfig().transformer) == defaults
    # the keys before 0.2 (dim_ff, bilstm.layers) still load, with a DeprecationWarning, into the new names
    with pytest.warns(DeprecationWarning, match="transformer.dim_ff"):
        cfg = config_from_dict({"transformer": {"dim_ff": 96}, "bilstm": {"layers": 3}})
    assert cfg.transformer.dim_feedforward == 96 and cfg.bilstm.n_layers == 3
    with pytest.warns(DeprecationWarning):
        assert merge_overrides(cfg, {"transformer.dim_ff": 32}).transformer.dim_feedforward == 32
    with pytest.raises(ValueError, match="old name of 'transformer.dim_feedforward'"):
        config_from_dict({"transformer": {"dim_ff": 96, "dim_feedforward": 64}})
    # a section is checked by building its model (on the meta device): the model's own message
    with pytest.raises(ValueError, match=r"config section 'bilstm'.*zoneout"):
        config_from_dict({"bilstm": {"zoneout": 1.5}})
    with pytest.raises(ValueError, match=r"config section 'xgboost'.*subsample"):
        config_from_dict({"xgboost": {"subsample": 2.0}})
    with pytest.raises(ValueError, match=r"ensemble.models\[1\].*did you mean 'bilstm'"):
        config_from_dict({"ensemble": {"models": ["transformer", "bilstn"]}})
    assert list(config_to_dict(cfg))[:2] == ["data", "augment"] and {"transformer", "bilstm", "xgboost"} <= set(config_to_dict(cfg))


def test_a_config_pickles_and_copies() -> None:
    import copy
    import pickle

    cfg = load_config(CONFIG_DIR / "cpu.yaml")
    assert pickle.loads(pickle.dumps(cfg)) == cfg == copy.deepcopy(cfg)
    assert pickle.loads(pickle.dumps(cfg)).transformer.d_model == cfg.transformer.d_model


def test_shipped_combiner_is_the_validation_winner() -> None:
    """`signlang benchmark accuracy --parts combiners` chose the mean on validation (docs/benchmarks.md);
    the dataclass default and both shipped configs say the same."""
    from signlang.training.config import EnsembleConfig, load_config, shipped_config_path

    assert EnsembleConfig().combiner == "mean"
    for name in ("cpu", "train"):
        assert load_config(shipped_config_path(name)).ensemble.combiner == "mean", name
