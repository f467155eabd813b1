// A second, well-behaved worker in the same workerd process as hostile.mjs.
export default {
  async fetch() {
    return new Response("Hello, world!");
  },
};
