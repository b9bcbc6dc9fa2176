"""signlang.explain stage."""
