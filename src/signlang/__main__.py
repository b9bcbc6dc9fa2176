from signlang.cli import main

main()
