"""Video ingest: sniff, probe, sample, detect, track, chunk and stitch (see docs/video.md).

Public entry points (what ingest calls; import them from their modules — this
``__init__`` stays empty so the settings can import :mod:`.settings` cheaply)::

    info = probe(source, settings)                       # header-level caps, typed errors
    plan = plan_chunks(video_id, info, settings)         # idempotent chunk ids
    result = process_chunk(source, plan, chunk, pipeline=video_pipeline(base, settings),
                           settings=settings)            # one instance, one chunk
    video = stitch(plan, results, settings)              # the finisher
    progress(plan, done_chunk_ids)                       # chunks done / total
    process_video(source, video_id, pipeline=..., settings=...)  # embedded mode: all of it
    chunk_result_to_dict(result) / chunk_result_from_dict(record)  # between instances

``source`` is a path or a seekable binary file object (each chunk re-opens it and seeks).
"""
