/**
 * Bad command-line input shared by `bad_input_test.ts` (each exits 2 with
 * one line) and `error_style_test.ts` (each line in the module's style).
 */

import { BENCH, CLIENT, SERVER } from "./_programs.ts";

/** [program, arguments, text the one error line must contain]. */
export const BAD_FLAGS: [string, string[], string][] = [
  [SERVER, ["--port", "-1"], "--port"],
  [SERVER, ["--port", "65536"], "--port"],
  [SERVER, ["--port", "http"], "--port"],
  [SERVER, ["--port", "80.5"], "--port"],
  [SERVER, ["--transport", "sctp"], "--transport"],
  [SERVER, ["--api", "threads"], "--api"],
  [SERVER, ["--mode", "shout"], "--mode"],
  [SERVER, ["--max-connections", "0"], "--max-connections"],
  [SERVER, ["--max-connections", "many"], "--max-connections"],
  [SERVER, ["--idle-timeout", "-5"], "--idle-timeout"],
  [SERVER, ["--idle-timeout", "soon"], "--idle-timeout"],
  [SERVER, ["--udp", "--rate-limit", "0"], "--rate-limit"],
  [SERVER, ["--udp", "--rate-limit", "fast"], "--rate-limit"],
  [SERVER, ["--log-level", "loud"], "--log-level"],
  [SERVER, ["--log-format", "xml"], "--log-format"],
  [SERVER, ["--backlog", "0"], "--backlog"],
  [SERVER, ["--backlog", "70000"], "--backlog"],
  [SERVER, ["--recv-buffer", "0"], "--recv-buffer"],
  [SERVER, ["--send-buffer", "big"], "--send-buffer"],
  [SERVER, ["--keepalive-idle", "0"], "--keepalive-idle"],
  [SERVER, ["--keepalive-interval", "40000"], "--keepalive-interval"],
  [SERVER, ["--keepalive-count", "200"], "--keepalive-count"],
  [SERVER, ["--until", ""], "--until"],
  [SERVER, ["--mode", "until", "--until-limit", "0"], "--until-limit"],
  [SERVER, ["--until-limit", "100"], "--until-limit"], // without until mode
  [SERVER, ["--max-buffered", "0"], "--max-buffered"],
  [SERVER, ["--max-buffered", "lots"], "--max-buffered"],
  [SERVER, ["--udp", "--max-buffered", "1000"], "--max-buffered"],
  [SERVER, ["--no-such-flag"], "--no-such-flag"],
  [CLIENT, ["--port", "0"], "--port"],
  [CLIENT, ["--timeout", "-1"], "--timeout"],
  [CLIENT, ["--transport", "quic"], "--transport"],
  [CLIENT, ["--udp", "--retries", "-1"], "--retries"],
  [CLIENT, ["--bogus"], "--bogus"],
  [CLIENT, ["--quiet-ms", "0"], "--quiet-ms"],
  [CLIENT, ["--quiet-ms", "soon"], "--quiet-ms"],
  [CLIENT, ["--message", "x", "--expect", "0"], "--expect"],
  [CLIENT, ["--message", "x", "--expect", "lots"], "--expect"],
  [CLIENT, ["--check"], "--check"], // without --message
  [CLIENT, ["--expect", "5"], "--expect"], // without --message
  [CLIENT, ["--message", "x", "--expect", "5", "--quiet-ms", "10"], "--quiet-ms"],
  [BENCH, ["--connections", "0"], "--connections"],
  [BENCH, ["--size", "-3"], "--size"],
  [BENCH, ["--duration", "forever"], "--duration"],
  [BENCH, ["--port", "99999"], "--port"],
  [BENCH, ["--bogus"], "--bogus"],
  [BENCH, ["--rate", "0"], "--rate"],
  [BENCH, ["--rate", "fast"], "--rate"],
  [BENCH, ["--percentiles", "50,101"], "--percentiles"],
  [BENCH, ["--percentiles", "50,,99"], "--percentiles"],
  [BENCH, ["--hgrm", ""], "--hgrm"],
  [BENCH, ["--churn", "--udp"], "--churn"],
  [BENCH, ["--churn", "--rate", "100"], "--churn"],
];
