"""A worker on a schedule: each cron run records itself in KV; GET / shows the last ones."""

import json

from atoll import Response


async def scheduled(event, env, ctx):
    runs = json.loads(await env.RUNS.get("runs") or "[]")
    runs.append({"cron": event.cron, "at": event.scheduled_time.isoformat()})
    await env.RUNS.put("runs", json.dumps(runs[-10:]))
    ctx.log(f"recorded run {len(runs)} ({event.cron})")


async def fetch(request, env, ctx):
    runs = json.loads(await env.RUNS.get("runs") or "[]")
    return Response.json({"runs": runs})
