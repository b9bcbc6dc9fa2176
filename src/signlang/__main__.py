from signlang.cli import app

app(prog_name="signlang")
