"""The signed query API: routes, schemas, problem+json errors, OpenAPI, the services.

:mod:`.app` (WSGI: routing, authentication, rendering), :mod:`.routes` (the route
table), :mod:`.schemas` (request/response models, the OpenAPI source),
:mod:`.service` (the services a process shares: :mod:`.search`, :mod:`.records`,
:mod:`.forget`, :mod:`.operations`). ``facesearch.backends.services.query_app``
builds the app that ``facesearch serve`` and ``functions/query/main.py`` run.
Import from the modules: this ``__init__`` stays empty so the settings can import
:mod:`.settings` cheaply.
"""
