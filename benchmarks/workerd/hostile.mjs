// Hostile guests for workerd: the routes of examples/bench/hostile/src/worker.py,
// on the same examples/bench/hostile/pkg/hostile.wasm, each on a fresh instance.
// Errors are not caught: workerd answers them as it does for any worker.
import hostile from "hostile.wasm";

export default {
  async fetch(request) {
    const url = new URL(request.url);
    switch (url.pathname) {
      case "/hello":
        return new Response("Hello, world!");
      case "/loop":
        new WebAssembly.Instance(hostile, {}).exports.spin();
        return new Response("the loop ended?!\n");
      case "/bomb": {
        const mb = Number(url.searchParams.get("mb") ?? 512);
        const grown = new WebAssembly.Instance(hostile, {}).exports.bomb(mb);
        return new Response(`grew ${grown} MiB\n`);
      }
      case "/overflow":
        new WebAssembly.Instance(hostile, {}).exports.overflow(1);
        return new Response("the recursion ended?!\n");
      default:
        return new Response("not found\n", { status: 404 });
    }
  },
};
