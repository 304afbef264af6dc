"""facesearch: serverless face search library (vision pipeline, bucket index, ports, API)."""

__version__ = "0.1.0"
