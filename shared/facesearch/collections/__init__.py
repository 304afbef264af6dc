"""Collections: independent sets of images, faces and persons in one deployment.

:mod:`.policy` (each collection's own settings: embedder, threshold, quality, retention,
quotas), :mod:`.directory` (collection records cached per instance, the active check),
:mod:`.erase` (erase a collection, verified), :mod:`.retention` (forget faces past their
collection's retention), :mod:`.quota` (requests per second per collection).
"""
