/**
 * Which of Deno's unstable APIs this process may use, for every layer.
 *
 * @module
 */

/**
 * `true` when Deno runs with `--unstable-net` (or `"unstable": ["net"]` in
 * its config): it gates `Deno.listenDatagram` and `Deno.listen`'s `reusePort`.
 */
export function hasUnstableNet(): boolean {
  return typeof (Deno as { listenDatagram?: unknown }).listenDatagram === "function";
}
