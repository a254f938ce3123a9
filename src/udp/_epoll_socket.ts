/**
 * A UDP socket on the epoll poller, the datagram driver of the `epoll`
 * backend: opened through libc (so no `--unstable-net`), read with
 * `recvmmsg` (up to {@linkcode BATCH} datagrams per system call, into one
 * arena the whole process shares, since one batch is dispatched at a time),
 * and written with `sendmmsg` for the answers a batch of several datagrams
 * produced (`sendto` when it produced one), `sendto` for a datagram sent at
 * any other time, a lone datagram's answer included. A
 * connected socket sends to its remote without naming it, so the kernel
 * uses the route it looked up at `connect` instead of one per datagram; it
 * reads a datagram that comes alone (a client's answer) with `recv`, which
 * costs the kernel less than `recvmmsg`, and its datagrams' source is the
 * remote, with no sockaddr to decode, once a read found its queue empty
 * after the connect (before, others' datagrams may still be queued).
 *
 * It delivers datagrams by pushing them to a {@linkcode DatagramSink} (the
 * transport) during the batch: a datagram's bytes are a view of the arena,
 * valid during the call. `sendNow` follows the sound-core rule: what goes
 * out is what the bytes were at the call, because a datagram either leaves
 * at once or is copied (into the batch's send arena, or the overflow queue
 * when the kernel's buffer is full). The one exception is the echo's own
 * answer (`_send_in_place.ts`): a protocol that promises to leave the
 * datagram it was lent unchanged has it sent from the receive arena, which
 * is not read into again before the batch's `sendmmsg`.
 *
 * The overflow queue is bounded: past {@linkcode OVERFLOW_LIMIT} bytes a
 * datagram is dropped and counted, as the kernel itself drops when its
 * buffer is full. While the queue is above the high water mark the socket
 * stops reading, so a peer cannot make it hold more.
 *
 * The pull API of {@linkcode DatagramSocket} (`receive`, `for await`) works
 * too: datagrams are then copied into a bounded queue.
 *
 * @module
 */

import {
  EAGAIN,
  EINTR,
  EPOLLERR,
  EPOLLIN,
  EPOLLOUT,
  SO_ERROR,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
  SOL_SOCKET,
} from "../libc/_constants.ts";
import { type LinuxLibc, loadLibc, sizeArgument } from "../libc/_libc.ts";
import { requireNetAccess } from "../sockets/_permission.ts";
import { type Poller, type PollTarget, TURN_BYTES } from "../poll/_poller.ts";
import { encodeSockaddr, parseSockaddr, SOCKADDR_SIZE } from "../sockets/_address.ts";
import { resolveAddress } from "../sockets/_listener.ts";
import { setOption } from "../sockopt/_options.ts";
import { formatAddress } from "../_address.ts";
import { checkDatagramSize, checkFamily, type Datagram, type DatagramSocket } from "./socket.ts";

/** Datagrams taken per `recvmmsg`, and sent per `sendmmsg`. */
const BATCH = 64;
/** One received datagram's room: any UDP payload over IPv4 or IPv6 fits. */
const SLOT = 65_536;
/** {@linkcode SLOT} as the bigint a `recv` length is. */
const SLOT_SIZE = BigInt(SLOT);
/** The bytes of sends one batch gathers before they go out together. */
const SEND_ARENA = 256 * 1024;
/** Batches read per readiness event at most, while each finds datagrams. */
const READS_PER_EVENT = 4;
/** Reads again in a row that found nothing before a socket stops reading again for a while. */
const READ_AGAIN_MISSES = 4;
/**
 * The most readiness events a socket lets pass without reading again after
 * a batch that was not full, once reading again kept finding nothing.
 */
const READ_AGAIN_BACKOFF = 16;
/** The most bytes the overflow queue holds; past it, datagrams are dropped and counted. */
const OVERFLOW_LIMIT = 4 * 1024 * 1024;
/** The bytes the pull API keeps for `receive`; past it, datagrams are dropped and counted. */
const PULL_QUEUE_BYTES = 4 * 1024 * 1024;
/** Room for a `sockaddr_in6` (28 bytes), rounded up. */
const NAME = 32;
/** `struct mmsghdr` on 64-bit Linux: a `msghdr` (56 bytes) and `msg_len`, padded. */
const MMSGHDR = 64;
/** `struct iovec`: base and length. */
const IOVEC = 16;
const MSG_DONTWAIT = 0x40;
const AF_INET = 2;
/** Addresses made for received datagrams, kept to hand the same object to the same peer. */
const ADDRESS_CACHE_LIMIT = 4096;

let libcOverride: LinuxLibc | null = null;

/** The libc the next epoll datagram sockets call: the real one, unless a test replaced it. */
export function datagramLibc(): LinuxLibc {
  return libcOverride ?? (loadLibc() as LinuxLibc);
}

/**
 * For tests: the libc the next epoll datagram sockets call (`null`: the
 * real one again). Over loopback the kernel never refuses a datagram for
 * want of room, so a test wraps `sendto`/`sendmmsg` to fail with EAGAIN and
 * so exercises the overflow queue.
 */
export function useDatagramLibc(libc: LinuxLibc | null): void {
  libcOverride = libc;
}

/** What a pushing socket tells the transport above it. */
export interface DatagramSink {
  /** A datagram arrived; `data` is valid during the call. */
  datagramReceived(data: Uint8Array, from: Deno.NetAddr): void;
  /** A receive or (`sending`) a send failed; the socket goes on. */
  errorReceived(error: Error, sending: boolean): void;
  /** The overflow queue passed the high water mark: the socket stopped reading. */
  writingPaused(): void;
  /** The overflow queue went down to the low water mark. */
  writingResumed(): void;
  /** Everything queued has gone out (or was dropped). */
  drained(): void;
  /** The socket failed for good (the poller did) and is closed. */
  failed(error: Error): void;
}

/** Writes pointer `address` (split into two 32-bit halves) at `words[index]`. */
function putPointer(words: Uint32Array, index: number, lo: number, hi: number, offset: number) {
  const sum = lo + offset;
  words[index] = sum >>> 0;
  words[index + 1] = hi + (sum > 0xffffffff ? 1 : 0);
}

/** The address of `buffer`'s first byte, as two 32-bit halves. */
function addressOf(buffer: Uint8Array): [lo: number, hi: number] {
  const value = Deno.UnsafePointer.value(Deno.UnsafePointer.of(buffer));
  const big = BigInt(value);
  return [Number(big & 0xffffffffn), Number(big >> 32n)];
}

/**
 * `count` `mmsghdr`s, each with one `iovec` and a name slot, laid out once;
 * `data` is where the bytes go (fixed slots to receive, packed to send).
 */
class MessageVector {
  readonly headers: Uint8Array;
  readonly words: Uint32Array;
  readonly names: Uint8Array;
  readonly iovecs: Uint8Array;
  readonly iovecWords: Uint32Array;
  readonly dataLo: number;
  readonly dataHi: number;
  readonly namesLo: number;
  readonly namesHi: number;
  /** The last view `view` made of each slot: datagrams of one size follow each other. */
  readonly #views: Uint8Array[] = [];

  constructor(readonly data: Uint8Array, count: number) {
    this.headers = new Uint8Array(count * MMSGHDR);
    this.words = new Uint32Array(this.headers.buffer);
    this.names = new Uint8Array(count * NAME);
    this.iovecs = new Uint8Array(count * IOVEC);
    this.iovecWords = new Uint32Array(this.iovecs.buffer);
    [this.dataLo, this.dataHi] = addressOf(data);
    [this.namesLo, this.namesHi] = addressOf(this.names);
    const [iovLo, iovHi] = addressOf(this.iovecs);
    for (let i = 0; i < count; i++) {
      const w = i * (MMSGHDR / 4);
      putPointer(this.words, w, this.namesLo, this.namesHi, i * NAME); // msg_name
      this.words[w + 2] = NAME; // msg_namelen
      putPointer(this.words, w + 4, iovLo, iovHi, i * IOVEC); // msg_iov
      this.words[w + 6] = 1; // msg_iovlen
    }
  }

  /** Points message `i`'s buffer at `data[offset, offset + length)`. */
  setBuffer(i: number, offset: number, length: number): void {
    const w = i * (IOVEC / 4);
    putPointer(this.iovecWords, w, this.dataLo, this.dataHi, offset);
    this.iovecWords[w + 2] = length;
    this.iovecWords[w + 3] = 0;
  }

  /** Points message `i`'s buffer at `other.data[offset, offset + length)`. */
  setBufferIn(i: number, other: MessageVector, offset: number, length: number): void {
    const w = i * (IOVEC / 4);
    putPointer(this.iovecWords, w, other.dataLo, other.dataHi, offset);
    this.iovecWords[w + 2] = length;
    this.iovecWords[w + 3] = 0;
  }

  /** Where message `i`'s buffer starts in `data` (for a buffer `setBuffer` set). */
  offset(i: number): number {
    const w = i * (IOVEC / 4);
    return this.iovecWords[w] - this.dataLo + (this.iovecWords[w + 1] - this.dataHi) * 0x100000000;
  }

  /** The length of message `i`'s buffer (what `setBuffer` gave it). */
  bufferLength(i: number): number {
    return this.iovecWords[i * (IOVEC / 4) + 2];
  }

  /** Message `i`'s name length (`msg_namelen`). */
  nameLength(i: number): number {
    return this.words[i * (MMSGHDR / 4) + 2];
  }

  setNameLength(i: number, length: number): void {
    this.words[i * (MMSGHDR / 4) + 2] = length;
  }

  /** Sets message `i`'s `msg_len`: a datagram `recv` took into its slot. */
  setLength(i: number, length: number): void {
    this.words[i * (MMSGHDR / 4) + 14] = length;
  }

  /** Bytes received or sent for message `i` (`msg_len`). */
  length(i: number): number {
    return this.words[i * (MMSGHDR / 4) + 14];
  }

  /**
   * `data[start, start + length)`, for message `i`: the slot's last view
   * when its length matches, so a stream of datagrams of one size makes no
   * garbage (the view is lent for one call, as a TCP read's is).
   */
  view(i: number, start: number, length: number): Uint8Array {
    let view = this.#views[i];
    if (view === undefined || view.length !== length) {
      view = this.#views[i] = this.data.subarray(start, start + length);
    }
    return view;
  }
}

/** The process's receive arena: one batch is dispatched at a time, so every socket shares it. */
let receiving: MessageVector | null = null;
/** How many of its messages the last `recvmmsg` filled: only their `msg_namelen` changed. */
let receivedLast = BATCH;
function receiveVector(): MessageVector {
  if (receiving !== null) return receiving;
  receiving = new MessageVector(new Uint8Array(BATCH * SLOT), BATCH);
  for (let i = 0; i < BATCH; i++) receiving.setBuffer(i, i * SLOT, SLOT);
  return receiving;
}
/** The process's send arena: only the socket dispatching a batch gathers sends in it. */
let sending: MessageVector | null = null;
function sendVector(): MessageVector {
  return sending ??= new MessageVector(new Uint8Array(SEND_ARENA), BATCH);
}
/**
 * For each message gathered, the view of the receive arena it is sent from
 * in place (see `_send_in_place.ts`), or `null` when its bytes were copied
 * into the send arena.
 */
const sentInPlace: (Uint8Array | null)[] = new Array(BATCH).fill(null);

/** The sockaddr bytes of addresses this module made or was given, to send to them again fast. */
const sockaddrs = new WeakMap<Deno.NetAddr, Sockaddr>();

/** An address's sockaddr, with the host and port it was made from (the object may change). */
interface Sockaddr {
  hostname: string;
  port: number;
  bytes: Uint8Array;
}
/** A source address handed out, the hostname it was made with, and the next of its port. */
interface CachedSource {
  address: Deno.NetAddr;
  hostname: string;
  /** The IPv4 address, as an unsigned 32-bit number. */
  ip: number;
  /** The cached source of another IPv4 address from the same port, if any. */
  next: CachedSource | null;
}
/**
 * Source addresses by port, each port's chained by IPv4 address, so a
 * peer's every datagram brings the same object. The key is the port alone,
 * a small integer: a key of address and port together is too large for
 * one, and V8 would allocate a number for every datagram's lookup.
 */
const ipv4Sources = new Map<number, CachedSource>();
/** How many sources `ipv4Sources` holds, over all its chains. */
let ipv4SourceCount = 0;

/** The address in `names[offset, offset + length)`, an object made once per IPv4 peer. */
function sourceOf(libc: LinuxLibc, names: Uint8Array, offset: number, length: number) {
  if (names[offset] === AF_INET && names[offset + 1] === 0) {
    const port = (names[offset + 2] << 8) | names[offset + 3];
    const ip = ((names[offset + 4] << 24) | (names[offset + 5] << 16) | (names[offset + 6] << 8) |
      names[offset + 7]) >>> 0;
    let cached = ipv4Sources.get(port) ?? null;
    while (cached !== null && cached.ip !== ip) cached = cached.next;
    if (cached !== null) {
      const address = cached.address;
      // A protocol may have changed the object it was given: then it is that protocol's now.
      if (
        address.port === port && address.hostname === cached.hostname &&
        address.transport === "udp"
      ) {
        return address;
      }
    }
    const hostname = `${names[offset + 4]}.${names[offset + 5]}.${names[offset + 6]}.${
      names[offset + 7]
    }`;
    const address: Deno.NetAddr = { transport: "udp", hostname, port };
    if (cached !== null) {
      cached.address = address;
      cached.hostname = hostname;
    } else {
      if (ipv4SourceCount >= ADDRESS_CACHE_LIMIT) {
        ipv4Sources.clear();
        ipv4SourceCount = 0;
      }
      ipv4Sources.set(port, { address, hostname, ip, next: ipv4Sources.get(port) ?? null });
      ipv4SourceCount++;
    }
    sockaddrs.set(address, { hostname, port, bytes: names.slice(offset, offset + 16) });
    return address;
  }
  const bytes = names.slice(offset, offset + length);
  const parsed = parseSockaddr(libc.constants, bytes);
  if (parsed === null) return null;
  const address: Deno.NetAddr = { transport: "udp", ...parsed };
  sockaddrs.set(address, { ...parsed, bytes });
  return address;
}

/** The sockaddr of `to`, encoded once per address object. */
function sockaddrOf(libc: LinuxLibc, to: Deno.NetAddr): Uint8Array {
  const known = sockaddrs.get(to);
  if (known !== undefined && known.port === to.port && known.hostname === to.hostname) {
    return known.bytes;
  }
  {
    const encoded = encodeSockaddr(libc.constants, to.hostname, to.port);
    if (encoded === null) {
      throw new TypeError(
        `Cannot send a datagram to udp ${formatAddress(to)}: the epoll backend sends to ` +
          `addresses, not names; resolve the name first (connectUdp does)`,
      );
    }
    sockaddrs.set(to, { hostname: to.hostname, port: to.port, bytes: encoded });
    return encoded;
  }
}

/** A datagram the kernel had no room for yet. */
interface Queued {
  data: Uint8Array;
  to: Uint8Array;
}

/** See the module documentation. */
export class EpollDatagramSocket implements DatagramSocket, PollTarget {
  readonly backend = "epoll";
  readonly addr: Deno.NetAddr;
  readonly fd: number;
  readonly receiveBuffer: ArrayBufferLike | null = null;
  /** Datagrams dropped: the overflow queue or the pull queue was full. */
  dropped = 0;
  /** Datagrams the kernel took. */
  sent = 0;
  readonly #libc: LinuxLibc;
  readonly #poller: Poller;
  #sink: DatagramSink | null = null;
  /** In the poller's set: from `start()` until `close()`. */
  #registered = false;
  /** No more datagrams are wanted (the transport is closing): read none, drop those held. */
  #reading = true;
  #high = 0;
  #low = 0;
  /** The events the socket is watched for. */
  #events = 0;
  #closed = false;
  readonly #released = Promise.withResolvers<void>();
  /** The remote of `connect`, and its sockaddr (the object `sockaddrOf` hands out for it). */
  #connectedTo: Deno.NetAddr | null = null;
  #connectedName: Uint8Array | null = null;
  /** The object a connected socket's datagrams are from: see `#connectedFrom`. */
  #from: Deno.NetAddr | null = null;
  /**
   * Every datagram queued is from the connected remote. `connect` does not
   * empty the receive queue, so datagrams others sent before it may still
   * be there: their sources are read, not assumed, until a read finds the
   * queue empty once.
   */
  #remoteOnly = false;
  /** Reads again in a row that found nothing, and events left that read once; see `onEvents`. */
  #readAgainMisses = 0;
  #readAgainSkips = 0;
  /** How many datagrams the last read that found any took. */
  #lastFound = 0;
  // Sends gathered during this socket's batch (in the shared send arena).
  #gathering = false;
  #gathered = 0;
  #gatheredBytes = 0;
  /** How many of those went out or failed, while `#sendGathered` runs. */
  #gatheredDone = 0;
  // The overflow queue.
  readonly #queue: Queued[] = [];
  #queueHead = 0;
  #queued = 0;
  #writingPaused = false;
  /** Datagrams of a batch received after writing paused, handed on once it resumes. */
  #held: Datagram[] | null = null;
  // The pull API.
  #pulled: Datagram[] | null = null;
  #pullFailure: Error | null = null;
  #pulledBytes = 0;
  #waiting: PromiseWithResolvers<Datagram | null> | null = null;
  #flushedWaiters: (() => void)[] = [];

  /**
   * Opens a UDP socket bound to `hostname`:`port`, with SO_REUSEADDR and
   * SO_REUSEPORT first when asked for.
   *
   * @throws {Deno.errors.NotCapable} without net permission for the address.
   * @throws {Deno.errors.AddrInUse} (and the other errors of `bind`) naming the address.
   */
  constructor(
    libc: LinuxLibc,
    poller: Poller,
    hostname: string,
    port: number,
    { reuseAddress, reusePort }: { reuseAddress: boolean; reusePort: boolean },
  ) {
    const where = formatAddress({ transport: "udp", hostname, port });
    requireNetAccess("udp", hostname, port, "bind");
    const sockaddr = encodeSockaddr(libc.constants, hostname, port) ??
      resolveAddress(libc, hostname, port, "udp");
    const family = sockaddr[0] | (sockaddr[1] << 8);
    const { symbols } = libc;
    const fd = symbols.socket(family, libc.constants.SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw libc.error(libc.errno(), `open a UDP socket for ${where}`);
    try {
      if (reuseAddress) setOption(libc, fd, "reuseAddress", true);
      if (reusePort) setOption(libc, fd, "reusePort", true);
      if (symbols.bind(fd, sockaddr, sockaddr.length) !== 0) {
        throw libc.error(libc.errno(), `bind ${where}`);
      }
      const bound = new Uint8Array(SOCKADDR_SIZE);
      const length = new Uint32Array([SOCKADDR_SIZE]);
      if (symbols.getsockname(fd, bound, length) !== 0) {
        throw libc.error(libc.errno(), `read the address of the UDP socket on ${where}`);
      }
      this.addr = { transport: "udp", ...parseSockaddr(libc.constants, bound)! };
    } catch (error) {
      symbols.close(fd);
      throw error;
    }
    this.fd = fd;
    this.#libc = libc;
    this.#poller = poller;
  }

  /**
   * Connects the socket to `remote` (no packet is sent): the kernel then
   * takes datagrams from it only, and reports an ICMP error about what was
   * sent there on the socket (port unreachable: ECONNREFUSED), which reaches
   * the sink's `errorReceived`.
   *
   * @throws the error of `connect`, naming both addresses.
   */
  connect(remote: Deno.NetAddr): void {
    const name = sockaddrOf(this.#libc, remote);
    if (this.#libc.symbols.connect(this.fd, name, name.length) !== 0) {
      throw this.#libc.error(
        this.#libc.errno(),
        `connect udp ${formatAddress(this.addr)} to ${formatAddress(remote)}`,
      );
    }
    this.#connectedTo = { transport: "udp", hostname: remote.hostname, port: remote.port };
    this.#connectedName = name;
    this.#remoteOnly = false;
  }

  /**
   * What every datagram of a connected socket is from (the kernel takes
   * datagrams from the remote only): one object, known to `sockaddrOf` so an
   * answer sent to it goes unnamed; made anew when a protocol changed it, as
   * `sourceOf` does (the changed one is that protocol's now).
   */
  #connectedFrom(): Deno.NetAddr {
    const from = this.#from;
    const remote = this.#connectedTo!;
    if (
      from !== null && from.port === remote.port && from.hostname === remote.hostname &&
      from.transport === "udp"
    ) {
      return from;
    }
    const made: Deno.NetAddr = { transport: "udp", hostname: remote.hostname, port: remote.port };
    sockaddrs.set(made, { hostname: made.hostname, port: made.port, bytes: this.#connectedName! });
    return this.#from = made;
  }

  /** Bytes waiting in the overflow queue. */
  get queuedBytes(): number {
    return this.#queued;
  }

  /**
   * Starts delivering datagrams to `sink`; the socket stops reading while
   * more than `high` bytes wait to be sent, and goes on at `low`.
   */
  start(sink: DatagramSink, high: number, low: number): void {
    this.attach(sink, high, low);
    this.register();
  }

  /** Says where datagrams and news go, and the water marks; sends may be made from now on. */
  attach(sink: DatagramSink, high: number, low: number): void {
    this.#sink = sink;
    this.#high = high;
    this.#low = low;
  }

  /** Joins the poller: reading (unless stopped) and draining what is queued. */
  register(): void {
    if (this.#registered || this.#closed) return;
    this.#registered = true;
    this.#poller.add(this.fd, this, 0);
    this.#watch();
  }

  /** The transport is closing: no datagram is received or handed on from now on. */
  stopReading(): void {
    this.#reading = false;
    this.#held = null;
    this.#watch();
  }

  /** `true` while a datagram waits to be sent (in the queue, or gathered in a batch). */
  get pending(): boolean {
    return this.#queueHead < this.#queue.length || this.#gathered > 0;
  }

  /**
   * Sends `data` to `to`: gathered into this batch's `sendmmsg` when called
   * while the socket dispatches one, else sent at once, else (the kernel's
   * buffer is full) copied into the overflow queue, or dropped and counted
   * past its bound. Gathered, it is copied into the send arena, unless
   * `inPlace` says the caller leaves it unchanged and it is a view of the
   * receive arena (see `_send_in_place.ts`): then it is sent from there.
   *
   * @throws {RangeError} for a datagram larger than UDP carries to `to`.
   * @throws {Deno.errors.NotSupported} for an IPv6 address from an IPv4 socket.
   * @throws {TypeError} for a host name instead of an address.
   */
  sendNow(data: Uint8Array, to: Deno.NetAddr, inPlace = false): void {
    if (this.#closed) {
      throw new Deno.errors.BadResource(
        `Cannot send on udp ${formatAddress(this.addr)}: the socket is closed`,
      );
    }
    const name = sockaddrOf(this.#libc, to);
    if (this.#queueHead < this.#queue.length) return this.#enqueue(data, name);
    if (this.#gathering) return this.#gather(data, name, inPlace);
    const n = this.#sendTo(data, data.length, name, name.length);
    if (n >= 0) {
      this.sent++;
      return;
    }
    const code = this.#libc.errno();
    if (code === EAGAIN || code === EINTR) return this.#enqueue(data, name);
    this.#sink?.errorReceived(this.#libc.error(code, `send to udp ${formatAddress(to)}`), true);
  }

  /**
   * One `sendto` of `data[0, length)` to `name[0, nameLength)`, or one `send`
   * for the connected remote (a name length of 0 stands for it too).
   */
  #sendTo(data: Uint8Array, length: number, name: Uint8Array, nameLength: number): number {
    const libc = this.#libc;
    return nameLength === 0 || name === this.#connectedName
      ? libc.symbols.send(this.fd, data, sizeArgument(length), 0)
      : libc.linux.sendto(this.fd, data, sizeArgument(length), 0, name, nameLength);
  }

  /** The address a sockaddr names, for an error message (empty: the connected remote). */
  #describe(name: Uint8Array): string {
    if (name.length === 0 && this.#connectedTo !== null) return formatAddress(this.#connectedTo);
    const address = parseSockaddr(this.#libc.constants, name);
    return address ? formatAddress({ transport: "udp", ...address }) : "?";
  }

  // ---- The poller's side ---------------------------------------------------

  onEvents(events: number): void {
    if (this.#closed) return;
    if (events & EPOLLERR) this.#takeError();
    if (events & EPOLLOUT) this.#flushQueue();
    if (this.#held !== null && !this.#writingPaused && !this.#closed) this.#deliverHeld();
    if (!(events & EPOLLIN)) return;
    // Once readable, read again while datagrams keep coming and the poller's turn has room:
    // under load the next have arrived by the time a batch's answers are out, and a read that
    // finds them spares an epoll_wait. Where they do not (a client with one datagram in
    // flight, whose answer cannot be back yet), reads again that kept finding nothing make
    // the next events read once, for a number of events that doubles with each further miss
    // (a server under load, whose reads again mostly find datagrams, rarely misses
    // READ_AGAIN_MISSES times in a row); a full batch always reads again.
    let count = 0;
    for (let reads = 0; reads < READS_PER_EVENT; reads++) {
      if (this.#closed || this.#writingPaused || !this.#reading) return;
      if (reads > 0 && count < BATCH && this.#readAgainSkips > 0) {
        this.#readAgainSkips--;
        return;
      }
      // A connected socket whose reads take one datagram at a time (a client with one in
      // flight) reads the first with recv, which costs the kernel less than recvmmsg; reads
      // again, which find bursts, take batches.
      count = this.#receiveBatch(reads === 0 && this.#lastFound <= 1 && this.#remoteOnly);
      if (count > 0) this.#lastFound = count;
      if (reads > 0) {
        const misses = this.#readAgainMisses = count > 0 ? 0 : this.#readAgainMisses + 1;
        if (misses >= READ_AGAIN_MISSES) {
          this.#readAgainSkips = Math.min(2 ** (misses - READ_AGAIN_MISSES), READ_AGAIN_BACKOFF);
        }
      }
      if (count === 0 || this.#poller.delivered >= TURN_BYTES) return;
    }
  }

  /** Hands on the datagrams a batch held back while the queue was past its high water mark. */
  #deliverHeld(): void {
    const held = this.#held!;
    let i = 0;
    this.#gathering = true;
    try {
      while (i < held.length && !this.#writingPaused && !this.#closed && this.#reading) {
        const [data, from] = held[i++];
        this.#sink!.datagramReceived(data, from);
      }
    } finally {
      this.#gathering = false;
      this.#held = i < held.length && !this.#closed && this.#reading ? held.slice(i) : null;
      if (this.#gathered > 0 && !this.#closed) this.#sendGathered();
    }
  }

  onPollerError(error: Error): void {
    const sink = this.#sink;
    this.close();
    sink?.failed(error);
  }

  /**
   * What was being done when the kernel reported an error on the socket:
   * `verb` the socket, or, connected, reaching the remote (an ICMP error,
   * such as port unreachable, is about what was sent there).
   */
  #errorAction(verb: string): string {
    const local = formatAddress(this.addr);
    const remote = this.#connectedTo;
    return remote === null
      ? `${verb} udp ${local}`
      : `reach udp ${formatAddress(remote)} from ${local}`;
  }

  /** Reads and clears the socket's pending error (an ICMP error), so the poller stops reporting it. */
  #takeError(): void {
    const value = new Int32Array(1);
    const length = new Uint32Array([4]);
    const libc = this.#libc;
    if (libc.symbols.getsockopt(this.fd, SOL_SOCKET, SO_ERROR, value, length) !== 0) return;
    if (value[0] !== 0) {
      this.#sink?.errorReceived(libc.error(value[0], this.#errorAction("use")), false);
    }
  }

  /**
   * One `recvmmsg` (or, when `single`, on a connected socket whose queue
   * holds the remote's datagrams only, one `recv` into the first slot),
   * each datagram pushed to the sink, then the answers out in one
   * `sendmmsg`. Returns how many datagrams came.
   */
  #receiveBatch(single: boolean): number {
    const vector = receiveVector();
    const libc = this.#libc;
    let n: number;
    if (single) {
      const length = libc.symbols.recv(this.fd, vector.data, SLOT_SIZE, MSG_DONTWAIT);
      if (length >= 0) vector.setLength(0, length); // 0 is an empty datagram, not an end
      n = length < 0 ? -1 : 1;
    } else {
      for (let i = 0; i < receivedLast; i++) vector.setNameLength(i, NAME);
      n = libc.linux.recvmmsg(this.fd, vector.headers, BATCH, MSG_DONTWAIT, null);
      receivedLast = n > 0 ? n : 0;
    }
    if (n <= 0) {
      const code = n < 0 ? libc.errno() : EAGAIN;
      // The queue is empty: what comes from now on is the remote's (see `#remoteOnly`).
      if (code === EAGAIN && this.#connectedTo !== null) this.#remoteOnly = true;
      if (code !== EAGAIN && code !== EINTR) {
        const error = libc.error(code, this.#errorAction("receive on"));
        this.#sink!.errorReceived(error, false);
      }
      return 0;
    }
    const sink = this.#sink!;
    const data = vector.data;
    const remoteOnly = this.#remoteOnly;
    let bytes = 0;
    // The answers of several datagrams go out together; a lone datagram's (a client's answer,
    // a quiet server's request) at once, with no copy into the send arena to gather them (and
    // a refused one is reported during the protocol's call, as at any other time).
    this.#gathering = n > 1;
    try {
      for (let i = 0; i < n && !this.#closed && this.#reading; i++) {
        const from = remoteOnly
          ? this.#connectedFrom()
          : sourceOf(libc, vector.names, i * NAME, vector.nameLength(i));
        if (from === null) continue;
        const start = i * SLOT;
        const length = vector.length(i);
        if (this.#writingPaused) {
          // Answers wait past the high water mark: the rest of the batch waits too (copied, as
          // the arena is the next batch's), so nothing more is received until they drain.
          (this.#held ??= []).push([data.slice(start, start + length), from]);
          continue;
        }
        bytes += length;
        sink.datagramReceived(vector.view(i, start, length), from);
      }
    } finally {
      this.#gathering = false;
      // Also when a protocol threw out of the loop: what it gathered is its, and the arena
      // is the next batch's (of any socket).
      if (this.#gathered > 0 && !this.#closed) this.#sendGathered();
    }
    this.#poller.delivered += bytes;
    return n;
  }

  /**
   * Adds a datagram to the batch's answers: copied into the send arena, or
   * sent in place from the receive arena (`fromArena`, see `sendNow`);
   * sends what is gathered first when the batch is full.
   */
  #gather(data: Uint8Array, name: Uint8Array, fromArena: boolean): void {
    const vector = sendVector();
    const arena = fromArena && data.buffer === receiving?.data.buffer ? receiving : null;
    if (
      this.#gathered === BATCH ||
      (arena === null && this.#gatheredBytes + data.length > SEND_ARENA)
    ) {
      this.#sendGathered();
      // Still full: a datagram as large as the arena, or the kernel's buffer is full.
      if (this.#queueHead < this.#queue.length || data.length > SEND_ARENA) {
        return this.#enqueue(data, name);
      }
    }
    const i = this.#gathered++;
    if (arena !== null) {
      vector.setBufferIn(i, arena, data.byteOffset, data.length);
      sentInPlace[i] = data;
    } else {
      vector.data.set(data, this.#gatheredBytes);
      vector.setBuffer(i, this.#gatheredBytes, data.length);
      sentInPlace[i] = null;
      this.#gatheredBytes += data.length;
    }
    if (name === this.#connectedName) {
      vector.setNameLength(i, 0); // the connected remote, unnamed
    } else {
      vector.names.set(name, i * NAME);
      vector.setNameLength(i, name.length);
    }
  }

  /** `sendmmsg` of what the batch gathered; what the kernel has no room for goes to the queue. */
  #sendGathered(notify = true): void {
    const vector = sendVector();
    const libc = this.#libc;
    const count = this.#gathered;
    let done = this.#gatheredDone;
    while (done < count && !this.#closed) {
      let n: number;
      if (count - done === 1) {
        // One datagram (a batch with one answer, as a client's often is): sendto costs less.
        const length = vector.bufferLength(done);
        let data = sentInPlace[done];
        if (data === null) {
          const offset = vector.offset(done);
          data = offset === 0 ? vector.data : vector.data.subarray(offset);
        }
        const nameLength = vector.nameLength(done);
        const name = done === 0 ? vector.names : vector.names.subarray(done * NAME);
        n = this.#sendTo(data, length, name, nameLength) >= 0 ? 1 : -1;
      } else {
        const headers = done === 0 ? vector.headers : vector.headers.subarray(done * MMSGHDR);
        n = libc.linux.sendmmsg(this.fd, headers, count - done, 0);
      }
      if (n > 0) {
        done += n;
        this.sent += n;
        continue;
      }
      const code = libc.errno();
      if (code === EINTR) continue;
      if (code === EAGAIN) break;
      // This datagram failed (an unreachable address, say): report it and go on with the rest.
      // A close from the report sends the rest only: what went out is not sent again.
      const name = vector.names.subarray(done * NAME, done * NAME + vector.nameLength(done));
      this.#gatheredDone = ++done;
      this.#sink?.errorReceived(libc.error(code, `send to udp ${this.#describe(name)}`), true);
      // The report sent the rest itself (a close, or a send that found the batch full): what
      // is gathered now, if anything, is newer, and goes out with the batch.
      if (this.#gatheredDone !== done) return;
    }
    // The kernel is full: the rest waits in the queue, copied out of the arena.
    for (let i = done; i < count && !this.#closed; i++) {
      const name = vector.names.slice(i * NAME, i * NAME + vector.nameLength(i));
      let data = sentInPlace[i];
      if (data === null) {
        const offset = vector.offset(i);
        data = vector.data.subarray(offset, offset + vector.bufferLength(i));
      }
      this.#enqueue(data, name);
    }
    this.#gathered = 0;
    this.#gatheredDone = 0;
    this.#gatheredBytes = 0;
    // All out: a transport closing after this batch may now end.
    if (notify && this.#queueHead === this.#queue.length && !this.#closed) this.#sink?.drained();
  }

  // ---- The overflow queue --------------------------------------------------

  #enqueue(data: Uint8Array, name: Uint8Array): void {
    if (this.#queued + data.length > OVERFLOW_LIMIT) {
      this.dropped++;
      return;
    }
    this.#queue.push({ data: data.slice(), to: name });
    this.#queued += data.length;
    if (!this.#writingPaused && this.#queued > this.#high) {
      this.#writingPaused = true;
      this.#sink?.writingPaused();
    }
    this.#watch();
  }

  /** Sends what waits in the queue while the kernel takes it. */
  #flushQueue(): void {
    const libc = this.#libc;
    const queue = this.#queue;
    while (this.#queueHead < queue.length && !this.#closed) {
      const { data, to } = queue[this.#queueHead];
      const n = this.#sendTo(data, data.length, to, to.length);
      if (n < 0) {
        const code = libc.errno();
        if (code === EAGAIN) break;
        if (code === EINTR) continue;
        this.#sink?.errorReceived(libc.error(code, `send to udp ${this.#describe(to)}`), true);
      } else {
        this.sent++;
      }
      queue[this.#queueHead++] = undefined as unknown as Queued;
      this.#queued -= data.length;
      if (this.#writingPaused && this.#queued <= this.#low) {
        this.#writingPaused = false;
        this.#sink?.writingResumed();
        if (this.#closed) return;
      }
    }
    if (this.#closed) return;
    if (this.#queueHead === queue.length) {
      queue.length = 0;
      this.#queueHead = 0;
      this.#sink?.drained();
      for (const resolve of this.#flushedWaiters.splice(0)) resolve();
    }
    this.#watch();
  }

  /** Watches for what the socket needs now: room to send, datagrams to read, or both. */
  #watch(): void {
    if (this.#closed || !this.#registered) return;
    const pending = this.#queueHead < this.#queue.length;
    const events = (pending ? EPOLLOUT : 0) | (this.#writingPaused || !this.#reading ? 0 : EPOLLIN);
    if (events === this.#events) return;
    this.#events = events;
    this.#poller.modify(this.fd, events);
  }

  // ---- The pull API of DatagramSocket ---------------------------------------

  [Symbol.asyncIterator](): AsyncIterator<Datagram> {
    return (async function* (socket: EpollDatagramSocket) {
      for (let datagram; (datagram = await socket.receive()) !== null;) yield datagram;
    })(this);
  }

  receive(): Promise<Datagram | null> {
    if (this.#pulled === null) this.#startPulling();
    const pulled = this.#pulled!;
    if (pulled.length > 0) {
      const datagram = pulled.shift()!;
      this.#pulledBytes -= datagram[0].length;
      return Promise.resolve(datagram);
    }
    if (this.#pullFailure !== null) {
      const failure = this.#pullFailure;
      this.#pullFailure = null;
      return Promise.reject(failure);
    }
    if (this.#closed) return Promise.resolve(null);
    if (this.#waiting !== null) {
      return Promise.reject(
        new Error(
          `Cannot receive on udp ${formatAddress(this.addr)}: another receive() is waiting; ` +
            `await each before the next`,
        ),
      );
    }
    this.#waiting = Promise.withResolvers();
    return this.#waiting.promise;
  }

  /** Settles the waiting `receive()`, if one waits. */
  #wakeReceiver(): PromiseWithResolvers<Datagram | null> | null {
    const waiting = this.#waiting;
    this.#waiting = null;
    return waiting;
  }

  /**
   * The pull API on the push one: each datagram copied into a queue of at
   * most {@linkcode PULL_QUEUE_BYTES} (past it, dropped and counted).
   */
  #startPulling(): void {
    const pulled: Datagram[] = this.#pulled = [];
    const fail = (error: Error) => {
      const waiting = this.#wakeReceiver();
      if (waiting !== null) waiting.reject(error);
      else this.#pullFailure ??= error;
    };
    this.start(
      {
        datagramReceived: (data, from) => {
          const datagram: Datagram = [data.slice(), from];
          const waiting = this.#wakeReceiver();
          if (waiting !== null) {
            waiting.resolve(datagram);
          } else if (this.#pulledBytes + data.length <= PULL_QUEUE_BYTES) {
            pulled.push(datagram);
            this.#pulledBytes += data.length;
          } else {
            this.dropped++;
          }
        },
        // A failed send rejects that send(); a failed receive, the next receive().
        errorReceived: (error, sending) => {
          if (!sending) fail(error);
        },
        writingPaused: () => {},
        writingResumed: () => {},
        drained: () => {},
        failed: fail,
      },
      OVERFLOW_LIMIT,
      OVERFLOW_LIMIT / 2,
    );
  }

  async send(data: Uint8Array, to: Deno.NetAddr): Promise<void> {
    checkDatagramSize(data, to);
    checkFamily(this.addr, to);
    if (this.#sink === null) this.#startPulling();
    if (this.#closed) {
      throw new Deno.errors.BadResource(
        `Cannot send on udp ${formatAddress(this.addr)}: the socket is closed`,
      );
    }
    if (this.#queueHead === this.#queue.length) {
      // Straight to the kernel, so a refusal rejects this send.
      const name = sockaddrOf(this.#libc, to);
      const libc = this.#libc;
      const n = libc.linux.sendto(this.fd, data, BigInt(data.length), 0, name, name.length);
      if (n >= 0) {
        this.sent++;
        return;
      }
      const code = libc.errno();
      if (code !== EAGAIN && code !== EINTR) {
        throw libc.error(code, `send to udp ${formatAddress(to)}`);
      }
    }
    this.sendNow(data, to); // queued behind the others
    await new Promise<void>((resolve) => this.#flushedWaiters.push(resolve));
  }

  get closed(): Promise<void> {
    return this.#released.promise;
  }

  close(): void {
    if (this.#closed) return;
    // What a batch gathered was sent as far as the caller knows: it goes out before the close
    // (telling no one: a transport told it drained would close this socket from in here).
    if (this.#gathered > 0) this.#sendGathered(false);
    this.#closed = true;
    if (this.#registered) this.#poller.remove(this.fd);
    this.#libc.symbols.close(this.fd);
    this.#held = null;
    this.#queue.length = 0;
    this.#queueHead = 0;
    this.#queued = 0;
    this.#gathered = 0;
    this.#gatheredBytes = 0;
    this.#wakeReceiver()?.resolve(null);
    this.#pulled = this.#pulled === null ? null : [];
    this.#pulledBytes = 0;
    for (const resolve of this.#flushedWaiters.splice(0)) resolve();
    this.#released.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return this.closed;
  }
}
