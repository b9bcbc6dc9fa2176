"""signlang.models stage: networks, estimators, the stacking ensemble and the model bundle.

* :mod:`~signlang.models.registry` - ``@register_model``, ``build_model``, ``list_models``
* :mod:`~signlang.models.transformer`, :mod:`~signlang.models.bilstm` - the registered networks
* :mod:`~signlang.models.base` - ``NeuralSequenceModel`` (sklearn-style inference wrapper)
* :mod:`~signlang.models.trees` - ``XGBoostClassifier``, ``PooledXGBoostClassifier``
* :mod:`~signlang.models.ensemble` - ``StackingEnsemble`` (out-of-fold stacking)
* :mod:`~signlang.models.bundle` - ``save_bundle``/``load_bundle`` (no pickle, sha256-checked)

Every estimator takes normalised landmarks ``X (N, T, 75, 3)`` and computes its own features
(:mod:`~signlang.models.featurize`). Submodules are imported explicitly, keeping this package light.
"""
