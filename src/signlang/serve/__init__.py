"""signlang.serve stage."""
