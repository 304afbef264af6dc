"""The video routes: a video's status, progress and tracks; forgetting a video.

Listed in :data:`facesearch.api.routes._DATA_ROUTES`, so each is also served under
``/v1/collections/<collection_id>``. Reading needs the ``search`` scope, forgetting
``erase`` (like images and persons).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from facesearch.api import schemas as s
from facesearch.api import video_schemas as vs
from facesearch.api.route import PageQuery, Route, query_args
from facesearch.auth.keys import Scope

if TYPE_CHECKING:
    from facesearch.api.app import Call


def get_video(call: Call) -> vs.VideoOut:
    q: PageQuery = query_args(call, PageQuery)
    return call.query.videos.get_video(call.args["video_id"], cursor=q.cursor, limit=q.limit)


def forget_video(call: Call) -> s.Forgotten:
    return call.query.forgetter.forget_video(call.args["video_id"])


VIDEO_ROUTES: tuple[Route, ...] = (
    Route(
        "get_video",
        "GET",
        "/v1/videos/<video_id>",
        get_video,
        "A video's processing status and progress, and a page of its tracks (moments, "
        "persons, thumbnails)",
        vs.VideoOut,
        query=PageQuery,
        tag="videos",
        errors=(400, 404),
    ),
    Route(
        "forget_video",
        "DELETE",
        "/v1/videos/<video_id>",
        forget_video,
        "Forget a video: every track face (records, crops, index entries), its tracks and "
        "what is left of its processing",
        s.Forgotten,
        tag="forget",
        errors=(404,),
        scope=Scope.ERASE,
    ),
)
