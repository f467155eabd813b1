from atoll import Response

async def fetch(request, env, ctx):
    n = int(request.query.get("n", "42"))
    instance = env.RUST_MODULE.instantiate()          # fresh instance, its own memory
    return Response(f"Result: {instance.exports.heavy_compute(n)}")
