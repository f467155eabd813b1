"""The auth worker: only other workers call it (through [[services]] bindings)."""

from atoll import Response


async def fetch(request, env, ctx):
    user = env.TOKENS.get(request.headers.get("authorization") or "")
    if user is None:
        ctx.log("refused a token")
        return Response("bad token", status=401)
    return Response(user)
