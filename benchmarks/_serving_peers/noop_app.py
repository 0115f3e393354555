"""The transport ceiling: raw Starlette that reads the body and answers a fixed JSON, no model.

uvicorn noop_app:app --no-access-log --loop uvloop --http httptools
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# The size of a real answer (two probabilities), so the response bytes match the model servers'.
_BODY = b'{"outputs":[[0.5,0.5]]}'


async def predict(request: Request) -> Response:
    await request.body()
    return Response(_BODY, media_type="application/json")


app = Starlette(routes=[Route("/predict", predict, methods=["POST"])])
