from mats.cli import main

main()
