"""Plain FastAPI, as its docs advise for blocking inference: a ``def`` endpoint (run in the
threadpool so the event loop never blocks) with a pydantic body.

    uvicorn fastapi_app:app --workers N --no-access-log
"""

from __future__ import annotations

from common import load_model, predict
from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()
_model = load_model()


class Body(BaseModel):
    inputs: list[list[float]]


@app.post("/predict")
def predict_endpoint(body: Body) -> dict[str, list[list[float]]]:
    return {"outputs": predict(_model, body.inputs)}
