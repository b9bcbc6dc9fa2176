"""signlang.features stage."""
