"""Ports and adapters for everything the library stores outside the process.

Each port is one small interface with exactly two adapters: the Google Cloud one
and an embedded local one, so the same code runs in Cloud Run and on a laptop.
"""
