/**
 * Seeded PROXY protocol headers, good and bad, sent to a live
 * `./server --proxy-protocol` over real connections: shared by
 * `tests/proxy_live_fuzz_test.ts` and the reliability suite's case.
 */

import { assert } from "@std/assert";
import { encodeProxyHeader, parseProxyHeader } from "../src/proxy/mod.ts";
import { concat, encode, prng, writeAll } from "./_helpers.ts";
import { bytes, SIG, tlv, u16, VALID } from "./_proxy_vectors.ts";
import { pool, settle, type WatchedServer } from "./stress/_harness.ts";

/** One connection's bytes, and what it is: `valid` ones must be echoed. */
interface Attempt {
  kind: string;
  /** Everything sent, header and data. */
  input: Uint8Array;
  /** Sent in pieces at these offsets. */
  cuts: number[];
  /** Left open after sending (the server's --proxy-timeout must end it). */
  silent: boolean;
  /** Built to be a whole TCP header followed by data: its data must come back. */
  valid: boolean;
}

/** What the fuzzing saw (see `fuzzLiveServer`). */
export interface LiveFuzzResult {
  tried: number;
  /** Per kind of attempt. */
  kinds: Record<string, number>;
  /** Connections that ended with nothing echoed although something followed the header. */
  refused: number;
  /** Whole headers the parser accepts whose data came back exactly. */
  echoed: number;
  /** Bytes echoed for a header the parser does not accept (must be 0). */
  echoedForInvalid: number;
  /** Whole headers with nothing after them: nothing to echo, and nothing to refuse. */
  wholeHeadersAlone: number;
  /** Whole headers (by the parser) whose data did not come back: the server refused them. */
  wholeHeadersUnanswered: string[];
  /** Attempts whose outcome broke a rule, described. */
  wrong: string[];
  /** Silent connections the server closed (after --proxy-timeout). */
  timedOut: number;
  fdsBefore: number;
  fdsAfter: number;
}

const tcp = (hostname: string, port: number): Deno.NetAddr => ({
  transport: "tcp",
  hostname,
  port,
});

/** A random whole header a balancer could send, TCP over IPv4 or IPv6, or LOCAL. */
function goodHeader(random: () => number): Uint8Array {
  const version = random() < 0.5 ? 1 : 2;
  const octet = () => Math.floor(random() * 256);
  const port = () => 1 + Math.floor(random() * 65535);
  const r = random();
  if (r < 0.1) return encodeProxyHeader({ version, command: "local" });
  const [source, destination] = r < 0.6
    ? [`${octet()}.${octet()}.${octet()}.${octet()}`, `10.0.0.${octet()}`]
    : [`2001:db8::${octet().toString(16)}`, `::${octet().toString(16)}`];
  const tlvs = version === 2 && random() < 0.3
    ? [{ type: 0x05, value: encode(`id-${Math.floor(random() * 1e9)}`) }]
    : [];
  return encodeProxyHeader({
    version,
    source: tcp(source, port()),
    destination: tcp(destination, port()),
    tlvs,
    crc32c: version === 2 && random() < 0.3,
  });
}

/** `header` with one to three random edits: bits flipped, bytes set, inserted or removed. */
function mutate(header: Uint8Array, random: () => number): Uint8Array {
  const out = Array.from(header);
  for (let edits = 1 + Math.floor(random() * 3); edits > 0; edits--) {
    const at = Math.floor(random() * out.length);
    const r = random();
    if (r < 0.4) out[at] ^= 1 << Math.floor(random() * 8);
    else if (r < 0.7) out[at] = Math.floor(random() * 256);
    else if (r < 0.85) out.splice(at, 0, Math.floor(random() * 256));
    else out.splice(at, 1);
  }
  return new Uint8Array(out);
}

/** The `i`th attempt of the run seeded by `random`. */
function attempt(random: () => number, i: number): Attempt {
  const junk = (n: number) => Array.from({ length: n }, () => Math.floor(random() * 256));
  const data = encode(`data ${i} `.repeat(1 + Math.floor(random() * 50)));
  const good = goodHeader(random);
  const of = (kind: string, input: Uint8Array, extra: Partial<Attempt> = {}): Attempt => {
    const cuts = random() < 0.5 ? [] : [1 + Math.floor(random() * Math.max(1, input.length - 1))];
    return { kind, input, cuts, silent: false, valid: false, ...extra };
  };
  switch (i % 9) {
    case 0:
      return of("valid header and data", concat([good, data]), { valid: true });
    case 1: {
      // The hand-written vectors and HAProxy's captures (UDP and UNIX ones too, which a
      // TCP server may refuse).
      const [, header] = VALID[Math.floor(random() * VALID.length)];
      return of("known header and data", concat([header, data]));
    }
    case 2:
      return of("valid header cut short", good.subarray(0, Math.floor(random() * good.length)));
    case 3:
      return of(
        "valid prefix then garbage",
        bytes(
          good.subarray(0, 1 + Math.floor(random() * (good.length - 1))),
          junk(1 + Math.floor(random() * 64)),
        ),
      );
    case 4: {
      // A v2 length past what comes: up to 65,535, with what follows cut short.
      const length = 12 + Math.floor(random() * (65535 - 12));
      const body = junk(Math.min(length - 1, Math.floor(random() * 2000)));
      return of("v2 length past the data", bytes(SIG, [0x21, 0x11], u16(length), body));
    }
    case 5: {
      // A v2 header of the greatest length, all of it sent: TLVs that run over, or junk.
      const tlvs = random() < 0.5 ? tlv(0x04, junk(65535 - 12 - 3)) : junk(65535 - 12);
      return of(
        "v2 of 65,535 bytes",
        bytes(SIG, [0x21, 0x11], u16(65535), [10, 0, 0, 1, 10, 0, 0, 2, 0, 80, 1, 187], tlvs, data),
      );
    }
    case 6:
      return of("mutated header and data", concat([mutate(good, random), data]));
    case 7:
      return of("random bytes", bytes(junk(1 + Math.floor(random() * 200))));
    default:
      // One in four of these is left open: only the server's timeout ends it.
      return random() < 0.25
        ? of(
          "valid prefix, left open",
          good.subarray(0, 1 + Math.floor(random() * (good.length - 1))),
          { silent: true },
        )
        : of(
          "v1 line without its end",
          bytes("PROXY TCP4 ", junk(120).map((b) => 0x30 + (b % 10))),
        );
  }
}

/** Sends `a` on a new connection; returns what came back and whether the server ended it. */
async function send(port: number, a: Attempt): Promise<{ echoed: Uint8Array; closed: boolean }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  let expired = false;
  const timer = setTimeout(() => { // a bound, should the server not end the connection
    expired = true;
    conn.close();
  }, 10_000);
  const chunks: Uint8Array[] = [];
  let closed = false;
  try {
    const writing = (async () => {
      let at = 0;
      for (const cut of [...a.cuts, a.input.length]) {
        await writeAll(conn, a.input.subarray(at, cut));
        at = cut;
      }
      if (!a.silent) await conn.closeWrite();
    })().catch(() => {}); // the server may close before all is written
    const buffer = new Uint8Array(65536);
    try {
      for (let n; (n = await conn.read(buffer)) !== null;) chunks.push(buffer.slice(0, n));
      closed = true;
    } catch (error) {
      if (expired) return { echoed: concat(chunks), closed: false };
      if (!(error instanceof Deno.errors.ConnectionReset)) throw error;
      closed = true;
    }
    await writing;
  } finally {
    clearTimeout(timer);
    if (!expired) conn.close();
  }
  return { echoed: concat(chunks), closed };
}

/**
 * Sends `count` seeded attempts (16 at a time) to `server` (started with
 * `--proxy-protocol --proxy-timeout 1`), checking each: the data after a
 * header the parser accepts comes back exactly or not at all, and nothing
 * comes back otherwise; every connection ends. Then waits (at most 10 s)
 * for the server's descriptors to return to their number before.
 */
export async function fuzzLiveServer(
  server: WatchedServer,
  count: number,
  seed: number,
): Promise<LiveFuzzResult> {
  const random = prng(seed);
  const attempts = Array.from({ length: count }, (_, i) => attempt(random, i));
  // One good connection first, so whatever the server opens lazily is open before counting.
  const warm = await send(server.port, attempts[0]);
  assert(warm.echoed.length > 0, "the first valid header was not answered");
  const fdsBefore = server.openIoFds();
  const result: LiveFuzzResult = {
    tried: count,
    kinds: {},
    refused: 0,
    echoed: 0,
    echoedForInvalid: 0,
    wrong: [],
    wholeHeadersUnanswered: [],
    wholeHeadersAlone: 0,
    timedOut: 0,
    fdsBefore,
    fdsAfter: 0,
  };
  await pool(count, 16, async (i) => {
    const a = attempts[i];
    result.kinds[a.kind] = (result.kinds[a.kind] ?? 0) + 1;
    const parsed = parseProxyHeader(a.input);
    const { echoed, closed } = await send(server.port, a);
    const say = (what: string) =>
      result.wrong.push(`#${i} (${a.kind}, ${a.input.length} bytes): ${what}`);
    if (!closed) say("the server did not end the connection within 10 s");
    if (a.silent && closed) result.timedOut++;
    const nothingAfter = parsed.status === "complete" && parsed.length === a.input.length;
    if (nothingAfter) result.wholeHeadersAlone++;
    else if (echoed.length === 0) result.refused++;
    if (parsed.status !== "complete") {
      result.echoedForInvalid += echoed.length;
      if (echoed.length > 0) {
        say(`${echoed.length} bytes echoed for a header that is ${parsed.status}`);
      }
      return;
    }
    const rest = a.input.subarray(parsed.length);
    if (echoed.length === 0 && !a.valid) { // a whole header the server may still refuse
      const head = Array.from(a.input.subarray(0, 48), (b) => b.toString(16).padStart(2, "0"));
      result.wholeHeadersUnanswered.push(
        `#${i} (${a.kind}, ${a.input.length} bytes): ${head.join("")}`,
      );
      return;
    }
    if (echoed.length !== rest.length || echoed.some((b, k) => b !== rest[k])) {
      say(`echoed ${echoed.length} bytes for ${rest.length} after the header, or others`);
    } else result.echoed++;
  });
  await settle(() => server.openIoFds() === fdsBefore, 10_000);
  result.fdsAfter = server.openIoFds();
  return result;
}
