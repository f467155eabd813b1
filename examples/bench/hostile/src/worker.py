"""Hostile guests (``../../rust/hostile.rs``), each on a fresh instance.

``/hello``           no wasm: what a well-behaved request gets meanwhile
``/loop``            an infinite loop
``/bomb?mb=512``     grows memory 1 MiB at a time up to ``mb`` MiB, aborting if refused
``/overflow``        unbounded recursion
"""

from atoll import Response


async def fetch(request, env, ctx):
    path = request.path
    if path == "/hello":
        return Response("Hello, world!")
    if path == "/loop":
        env.HOSTILE.instantiate().exports.spin()
        return Response("the loop ended?!\n")
    if path == "/bomb":
        mb = int(request.query.get("mb", "512"))
        grown = env.HOSTILE.instantiate().exports.bomb(mb)
        return Response(f"grew {grown} MiB\n")
    if path == "/overflow":
        env.HOSTILE.instantiate().exports.overflow(1)
        return Response("the recursion ended?!\n")
    return Response("not found\n", status=404)
