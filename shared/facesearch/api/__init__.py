"""The signed query API: routes, schemas, problem+json errors, OpenAPI, the service.

``facesearch.backends.services.query_app(backend)`` gives a WSGI app (``facesearch
serve``) whose ``handle(request)`` is also what ``functions/query/main.py`` calls.
Exports load lazily (:mod:`facesearch.lazy`) so the settings can import
:mod:`.settings` without werkzeug and the models.
"""

from typing import TYPE_CHECKING

from facesearch.lazy import lazy_exports

if TYPE_CHECKING:
    from facesearch.api.app import QueryApp
    from facesearch.api.openapi import openapi_document
    from facesearch.api.service import QueryService

_EXPORTS = {
    "QueryApp": "facesearch.api.app",
    "openapi_document": "facesearch.api.openapi",
    "QueryService": "facesearch.api.service",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = [
    "QueryApp",
    "QueryService",
    "openapi_document",
]
