"""Runnable experiments: registry, sandboxed executor, job queue and result cache.

Framework-free: nothing here imports Flask or ``knowledge``.
"""
