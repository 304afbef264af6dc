"""The video routes: a video's status, progress and tracks; forgetting a video.

Part of the data routes in :mod:`facesearch.api.routes`, so each is also served under
``/v1/collections/<collection_id>``. Reading needs the ``search`` scope, forgetting
``erase`` (like images and persons).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from facesearch.api import schemas as s
from facesearch.api import video_schemas as vs
from facesearch.api.route import PageQuery, RouteTable
from facesearch.auth.keys import Scope

if TYPE_CHECKING:
    from facesearch.api.app import Call

videos = RouteTable(tag="videos")


@videos.route("GET", "/v1/videos/<video_id>", errors=(400, 404))
def get_video(call: Call, query: PageQuery) -> vs.VideoOut:
    """A video's processing status and progress, and a page of its tracks (moments,
    persons, thumbnails)"""
    return call.query.videos.get_video(
        call.args["video_id"], cursor=query.cursor, limit=query.limit
    )


@videos.route("DELETE", "/v1/videos/<video_id>", tag="forget", errors=(404,), scope=Scope.ERASE)
def forget_video(call: Call) -> s.Forgotten:
    """Forget a video: every track face (records, crops, index entries), its tracks and
    what is left of its processing"""
    return call.query.forgetter.forget_video(call.args["video_id"])
