"""signlang.features stage: landmarks ``(T, 75, 3)`` -> normalised sequences -> feature table.

* :mod:`~signlang.features.normalize`: fill_gaps -> smooth -> to_body_frame -> resample
  (``normalize_clip``, ``normalize_clips``, ``NormalizeConfig``);
* :mod:`~signlang.features.engineering`: ``frame_features`` ``(..., T, F)``, ``frame_mask``,
  ``pool_features`` and the documented ``FEATURE_BLOCKS``;
* :mod:`~signlang.features.augment`: the seeded transform registry and ``build_augmentation``.
"""
