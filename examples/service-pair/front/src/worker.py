"""The public worker: asks the auth worker (a service binding, in process) before answering."""

from atoll import Response


async def fetch(request, env, ctx):
    token = request.headers.get("authorization") or ""
    verdict = await env.AUTH.fetch("/verify", headers={"authorization": token})
    if verdict.status != 200:
        return Response("denied\n", status=403)
    user = await verdict.text()
    return Response(f"hello, {user}\n")
