"""signlang.landmarks stage."""
