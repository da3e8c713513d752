"""Buckets between environments: what a storage sync would do, and the checked copies that do it."""
