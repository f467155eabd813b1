// my-worker: a JavaScript worker, run by atoll in a V8 isolate as Cloudflare Workers runs it.
import { describe } from "./describe.js";

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    const body = await request.arrayBuffer();
    const facts = describe(request, url, body.byteLength);
    console.log(`${request.method} ${url.pathname}`); // into the request's log and `atoll tail`
    if (url.pathname === "/json") {
      return Response.json(facts);
    }
    const name = url.searchParams.get("name") || "world";
    return new Response(
      `${env.GREETING}, ${name}!\n` +
        `method: ${facts.method}\npath:   ${facts.path}\nbody:   ${facts.bytes} bytes\n`,
    );
  },
};
