"""A caching-header proxy: forwards each request to env.UPSTREAM with atoll's fetch."""

from atoll import Response
from atoll import fetch as subrequest
from atoll.errors import EgressRefusedError, SubrequestError


async def fetch(request, env, ctx):
    parts = request.url_parts
    target = env.UPSTREAM.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        upstream = await subrequest(
            target,
            method=request.method,
            headers={"accept": request.headers.get("accept") or "*/*", "x-forwarded-by": "atoll"},
            body=await request.bytes() if request.method not in ("GET", "HEAD") else None,
        )
    except EgressRefusedError as exc:
        return Response(f"refused by the egress policy: {exc.message}\n", status=403)
    except SubrequestError as exc:
        return Response(f"upstream failed ({exc.reason}): {exc.message}\n", status=502)
    headers = {"content-type": upstream.headers.get("content-type") or "application/octet-stream"}
    headers["cache-control"] = "public, max-age=60"
    headers["x-upstream-status"] = str(upstream.status)
    return Response(upstream.body, status=upstream.status, headers=headers)
