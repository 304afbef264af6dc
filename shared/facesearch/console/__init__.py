"""The web console and the public share page, served by the query service.

Modules: :mod:`.settings` (the ``FACESEARCH_CONSOLE_*`` knobs), :mod:`.tokens` (login
links, session cookies, CSRF tokens, share links: all HMAC, no server state but the
one-time login links), :mod:`.identity` (who a request is: local session or the
verified IAP / Cloud Run identity), :mod:`.ratelimit`, :mod:`.share` (the selfie
search of a share link), :mod:`.app` (the WSGI layer in front of the query API) and
``static/`` (plain HTML, CSS and ES modules: no build step, no CDN).
"""
