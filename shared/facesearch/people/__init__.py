"""People: faces of a collection clustered into persons as they arrive, corrections that
stick, and person search (see docs/people.md).

Public entry points (import them from their modules — this ``__init__`` stays empty)::

    engine = PeopleEngine(store, search, faces, settings)   # engine.py: face events -> persons
    engine.handle_event(FaceEvent.decode(message))
    Corrections(store, settings, engine=engine).merge(target, [source])   # corrections.py
    recluster(store, settings, faces=..., knn=...)            # recluster.py: ids stay stable
    rank_persons(selfie_embedding, load_views(store))         # representative.py
"""
