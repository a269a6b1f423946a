"""`python -m twin ...` is the same as the `twin` console script."""
from twin.cli.main import main

main()
