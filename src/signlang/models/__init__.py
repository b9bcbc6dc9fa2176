"""signlang.models stage."""
