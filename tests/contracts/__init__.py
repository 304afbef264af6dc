"""Port contracts: one test suite per port, run against each of its adapters.

The embedded adapters (SQLite, directory, in-process) run everywhere; the Google
Cloud ones run the same tests against the emulators (marked ``integration``).
"""
