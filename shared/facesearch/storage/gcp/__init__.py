"""Google Cloud adapters of the storage ports: GCS blobs, Pub/Sub, Firestore documents.

Each takes its client from the composition root (:mod:`facesearch.backends.gcp`),
which creates one per instance; none reads settings.
"""
