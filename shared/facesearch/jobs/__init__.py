"""Batch jobs over a whole collection: backfill, rebuild (``facesearch backfill|rebuild``)."""
