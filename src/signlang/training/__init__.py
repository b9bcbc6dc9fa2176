"""signlang.training stage."""
