"""signlang.inference stage."""
