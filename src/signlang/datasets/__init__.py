"""signlang.datasets stage."""
