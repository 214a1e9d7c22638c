"""``python -m benchmarks [--quick] [--scenarios ...] [--output benchmarks/results/latest.md]``."""

from ._runner import main

main()
