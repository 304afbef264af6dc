"""Embedded adapters of the storage ports: a directory, an in-process bus, SQLite files.

Built by :mod:`facesearch.backends.local`; the same contract suites
(``tests/contracts/``) run against these and the Google Cloud adapters.
"""
