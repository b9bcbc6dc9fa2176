"""Hyper-parameter search with Optuna behind ``signlang tune``.

:func:`run_tune`::

    load -> split (test part held out, never touched) -> carve a validation part from the training
    part with the same protocol -> Optuna study in sqlite (``DIR/study.db``, resumed when it
    exists) -> trials: sample the search space -> config -> train one base model -> validation
    macro-F1 (reported per epoch to a median / Hyperband pruner) -> best.yaml, report, plots

The search space (:func:`load_space`, ``configs/space.yaml``) is keyed by dotted config keys and
validated like a config: an unknown key or a malformed entry is a ``ValueError`` naming the key.
``n_trials`` is the study's *total* of finished trials (COMPLETE + PRUNED): running the same
search again after a kill runs only the missing ones, and a trial that a killed process left
RUNNING is marked FAIL and done again. ``jobs > 1`` runs trials in that many spawned processes
against the same storage, the remaining trials split between them.

Parts: :mod:`.space` (the search space), :mod:`.objective` (data, trial runners, the objective),
:mod:`.study` (sampler, pruners, storage, one optimising process; Optuna's public API only),
:mod:`.report` (best.yaml, the report, plots) and :mod:`.search` (:func:`run_tune`).
"""

from __future__ import annotations

from signlang.training.tune.objective import (
    TRIAL_RUNNERS, Objective, PruningCallback, TrialInputs, TuneData, prepare_data, register_trial_runner, trial_runner_for,
)
from signlang.training.tune.report import BEST_CONFIG, REPORT, TuneResult, write_best_config, write_plots
from signlang.training.tune.search import run_tune
from signlang.training.tune.space import (
    DEFAULT_SPACE, SHIPPED_SPACES, ParamSpec, SearchSpace, default_space_name, load_space, model_sections, space_from_dict,
)
from signlang.training.tune.study import PRUNERS, count_finished, default_storage, fail_stale_trials, make_pruner, make_sampler, register_pruner

__all__ = [
    "BEST_CONFIG", "DEFAULT_SPACE", "PRUNERS", "REPORT", "SHIPPED_SPACES", "TRIAL_RUNNERS", "Objective", "ParamSpec",
    "PruningCallback", "SearchSpace", "TrialInputs", "TuneData", "TuneResult", "count_finished", "default_space_name", "default_storage",
    "fail_stale_trials", "load_space", "make_pruner", "make_sampler", "model_sections", "prepare_data", "register_pruner",
    "register_trial_runner", "run_tune", "space_from_dict", "trial_runner_for", "write_best_config", "write_plots",
]
