"""`python -m scalelab ...` is the `scalelab` command (so `torchrun -m scalelab pretrain ...` works too)."""

from scalelab.cli import main

if __name__ == "__main__":
    main()
