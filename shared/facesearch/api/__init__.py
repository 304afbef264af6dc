"""The signed query API: routes, schemas, problem+json errors, OpenAPI, the service.

``build_app(settings)`` gives a WSGI app (``facesearch serve``) whose
``handle(request)`` is also what ``functions/query/main.py`` calls in Cloud Run.
"""

from facesearch.api.app import QueryApp
from facesearch.api.factory import build_app, build_service
from facesearch.api.openapi import openapi_document
from facesearch.api.service import QueryService

__all__ = ["QueryApp", "QueryService", "build_app", "build_service", "openapi_document"]
