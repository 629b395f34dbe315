"""Serving benchmarks of maas (`make bench`); timing lives here, never in tests."""
