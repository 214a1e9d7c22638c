"""FastAPI: a stream behind an authentication dependency; a 401 is a 401, not an event.

FastAPI solves the dependencies before it calls the path operation, so an unauthenticated
request is answered `401` with FastAPI's JSON error and the generator never starts. A
browser's `EventSource` cannot send an `Authorization` header: it sends the cookies of its
origin (`withCredentials` for another origin), so the token comes from a cookie, or from a
query parameter for other clients (keep such URLs out of access logs). `EventSource` does
not reconnect after a 401: it fires `error` and stays closed.

`POST /login` sets the cookie (a fixed demo token: use your real session store).

Run:   python examples/fastapi_auth.py               (PORT=8000; uvicorn, asyncio)
       BACKEND=trio python examples/fastapi_auth.py  (hypercorn's trio worker)
Try:   curl -i http://127.0.0.1:8000/notifications                    (401)
       curl -N 'http://127.0.0.1:8000/notifications?token=demo-token'
       curl -N --cookie session=demo-token http://127.0.0.1:8000/notifications
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
import uvicorn
from fastapi import Cookie, Depends, FastAPI, HTTPException, Query, Response, status
from pydantic import BaseModel

from trio_sse import EventSourceResponse, run
from trio_sse.fastapi import document_streams

DEMO_TOKEN = "demo-token"
USERS = {DEMO_TOKEN: "ada"}


class Notification(BaseModel):
    user: str
    n: int
    text: str


def current_user(
    session: Annotated[str | None, Cookie()] = None,
    token: Annotated[str | None, Query()] = None,
) -> str:
    """The signed-in user, from the `session` cookie or the `token` query parameter; 401
    otherwise."""
    given = session or token or ""
    for known, user in USERS.items():
        if secrets.compare_digest(given.encode(), known.encode()):
            return user
    raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="not signed in")


app = FastAPI(title="auth")
document_streams(app)


@app.post("/login")
def login(response: Response) -> dict[str, str]:
    response.set_cookie("session", DEMO_TOKEN, httponly=True, samesite="strict")
    return {"user": USERS[DEMO_TOKEN]}


@app.get("/notifications", response_class=EventSourceResponse)
async def notifications(
    user: Annotated[str, Depends(current_user)],
) -> AsyncIterator[Notification]:
    for n in range(3):
        yield Notification(user=user, n=n, text=f"notification {n} for {user}")
        await anyio.sleep(0.1)


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8000"))
    if os.environ.get("BACKEND") == "trio":
        run(app, backend="trio", port=port)
    else:
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
