"""Indexer: applies face-embeddings / face-deletions messages to the bucket index.

:mod:`.service` (decode, group by model, one segment per batch, face-events),
:mod:`.group_commit` (gathers concurrent push requests into one commit),
:mod:`.entry` (Pub/Sub push handler with the one ack-vs-retry mapping).
"""
