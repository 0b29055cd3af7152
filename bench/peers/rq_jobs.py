"""The no-op job RQ workers import (bench/compare.py puts this folder on PYTHONPATH)."""


def noop(*args, **kwargs):
    return None
