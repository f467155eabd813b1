"""The benchmark worker: the routes of ``benchmarks/workerd/bench.mjs``, for atoll.

``/hello``            no wasm
``/compute?n=1000``   ``heavy_compute(n)`` on the warm instance (the seed's singleton)
``/fresh?n=1000``     ``heavy_compute(n)`` on a fresh instance made for this request
``/fib?n=30``         naive ``fib(n)`` on the warm instance
``POST /sha256``      SHA-256 of the body, hex (fresh instance)
``POST /resize?w=&h=&dw=&dh=``  the body, an RGBA w x h image, resized (fresh instance)
``POST /json``        the number of values in the body's JSON text (fresh instance)
"""

from atoll import Response


def _int(request, name, default):
    return int(request.query.get(name, str(default)))


async def fetch(request, env, ctx):
    path = request.path
    if path == "/hello":
        return Response("Hello, world!")
    if path == "/compute":
        value = env.BENCH.instance.exports.heavy_compute(_int(request, "n", 1000))
        return Response(f"Result: {value & 0xFFFFFFFF}")
    if path == "/fresh":
        value = env.BENCH.instantiate().exports.heavy_compute(_int(request, "n", 1000))
        return Response(f"Result: {value & 0xFFFFFFFF}")
    if path == "/fib":
        return Response(f"Result: {env.BENCH.instance.exports.fib(_int(request, 'n', 30))}")
    if path == "/sha256":
        digest = env.BENCH.instantiate().exports.sha256.bytes(await request.bytes())
        return Response(digest.hex())
    if path == "/resize":
        sizes = [_int(request, name, 0) for name in ("w", "h", "dw", "dh")]
        image = env.BENCH.instantiate().exports.resize.bytes(await request.bytes(), *sizes)
        if not image:
            return Response("wrong sizes\n", status=400)
        return Response(image, headers={"content-type": "application/octet-stream"})
    if path == "/json":
        count = env.BENCH.instantiate().exports.json_count(await request.bytes())
        return Response(str(count))
    return Response("not found\n", status=404)
