/**
 * Finds the descriptor of a connected socket with a few probes where the
 * kernel most likely put it, and scans the whole descriptor table only when
 * they all miss. The kernel gives each new socket the lowest free descriptor,
 * so a new connection is almost always just past the last one found, or in a
 * slot a closed connection gave back. Each probe is checked against the
 * socket's addresses, so a wrong guess costs a call, never a wrong answer.
 *
 * @module
 */

import { findSocketFd, isSocket, type SocketIdentity } from "./_fd.ts";
import type { Libc } from "../libc/_libc.ts";

/** Descriptors tried just past the last one found, and past the highest one. */
const PROBES_AFTER_LAST = 8;
/** Given-back descriptors remembered, lowest first. */
const MAX_RELEASED = 1024;
/** Lookups a remembered slot may miss before it is forgotten. */
const MAX_MISSES = 64;

let last = -1;
let highest = -1;
const released: number[] = [];
/** How many lookups each remembered slot has missed. */
const misses: number[] = [];
let scans = 0;

/**
 * Returns the descriptor of the connected socket `identity` describes, or
 * `null` when it is not open in this process.
 */
export function locateSocketFd(libc: Libc, identity: SocketIdentity): number | null {
  for (let i = 0; i < released.length; i++) {
    const fd = released[i];
    if (isSocket(libc, fd, identity)) {
      released.splice(i, 1);
      misses.splice(i, 1);
      return found(fd);
    }
    // A slot something else took stays taken: forget it after enough misses.
    if (++misses[i] > MAX_MISSES) {
      released.splice(i, 1);
      misses.splice(i, 1);
      i--;
    }
  }
  if (last >= 0) {
    // From the last one itself: a client's setup and its transport look up the same socket.
    for (let fd = last; fd <= last + PROBES_AFTER_LAST; fd++) {
      if (isSocket(libc, fd, identity)) return found(fd);
    }
  }
  // Once the freed slots are used up, new sockets go past the highest one.
  if (highest > last + PROBES_AFTER_LAST) {
    for (let fd = highest + 1; fd <= highest + PROBES_AFTER_LAST; fd++) {
      if (isSocket(libc, fd, identity)) return found(fd);
    }
  }
  scans++;
  const fd = findSocketFd(libc, identity);
  return fd === null ? null : found(fd);
}

/**
 * Tells the locator that the socket on `fd` is being closed, so the kernel
 * will hand that slot to a later socket. Call it before closing.
 */
export function releaseSocketFd(fd: number): void {
  if (released.includes(fd)) return;
  let at = released.length;
  while (at > 0 && released[at - 1] > fd) at--;
  released.splice(at, 0, fd);
  misses.splice(at, 0, 0);
  if (released.length > MAX_RELEASED) {
    released.pop();
    misses.pop();
  }
}

/** How many full scans {@linkcode locateSocketFd} has made (for tests). */
export function fullScanCount(): number {
  return scans;
}

function found(fd: number): number {
  last = fd;
  if (fd > highest) highest = fd;
  return fd;
}
