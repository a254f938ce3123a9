/**
 * The bench's latency histogram counts latencies itself, where HdrHistogram
 * would, and hands them to the library only when it is read: everything it
 * reports must be what the library reports for the same latencies recorded
 * one by one.
 */

import { assertEquals } from "@std/assert";
import * as hdr from "hdr-histogram-js";
import { countsIndex, LatencyHistogram } from "../src/load/histogram.ts";
import { prng } from "./_helpers.ts";

const HIGHEST_US = 3_600_000_000;

/** A histogram of the library's own, set up as LatencyHistogram's is. */
function reference(): hdr.Histogram {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: HIGHEST_US,
    numberOfSignificantValueDigits: 3,
    bitBucketSize: 64,
    autoResize: false,
    useWebAssembly: false,
  });
}

Deno.test("countsIndex is HdrHistogram's own index, at every bucket's edges and in between", () => {
  const library = reference() as unknown as { countsArrayIndex(value: number): number };
  const values = new Set<number>();
  for (let value = 1; value <= 70_000; value++) values.add(value);
  for (let power = 11; power < 32; power++) {
    for (const delta of [-2, -1, 0, 1, 2]) values.add(2 ** power + delta);
  }
  const next = prng(7);
  for (let i = 0; i < 100_000; i++) values.add(1 + Math.floor(next() * (HIGHEST_US - 1)));
  values.add(HIGHEST_US);
  for (const value of values) {
    if (value < 1 || value > HIGHEST_US) continue;
    const ours = countsIndex(value);
    const theirs = library.countsArrayIndex(value);
    if (ours !== theirs) throw new Error(`${value}: index ${ours}, the library's ${theirs}`);
  }
});

Deno.test("every figure is the library's for the same latencies, read once or as they come", () => {
  for (const seed of [1, 2, 3]) {
    const next = prng(seed);
    const ours = new LatencyHistogram();
    const theirs = reference();
    for (let i = 0; i < 20_000; i++) {
      // Mostly tens of µs, some ms, a few seconds and beyond the highest: every kind of bucket.
      const roll = next();
      const ms = roll < 0.9 ? next() * 0.2 : roll < 0.99 ? next() * 50 : next() * 5_000_000;
      const us = Math.min(Math.max(Math.round(ms * 1000), 1), HIGHEST_US);
      ours.recordMs(ms);
      theirs.recordValue(us);
      // Read now and then, so counts join the library's in several goes.
      if (i % 4_999 === 0) assertEquals(ours.count, theirs.totalCount);
    }
    assertEquals(
      [ours.count, ours.minUs, ours.maxUs, ours.meanUs],
      [theirs.totalCount, theirs.minNonZeroValue, theirs.maxValue, theirs.mean],
    );
    for (const percentile of [0, 50, 90, 99, 99.9, 99.99, 100]) {
      assertEquals(ours.atPercentile(percentile), theirs.getValueAtPercentile(percentile));
    }
    assertEquals(ours.percentileDistribution(), theirs.outputPercentileDistribution(5, 1000));
  }
});

Deno.test("one latency, or one place holding both the least and the greatest, reads exactly", () => {
  for (
    const values of [[0.005], [2.501], [2.5, 2.501], [2.501, 2.5, 2.5005], [5.003, 9.001], [
      0.001,
      0.001,
    ]]
  ) {
    const ours = new LatencyHistogram();
    const theirs = reference();
    for (const ms of values) {
      ours.recordMs(ms);
      theirs.recordValue(Math.round(ms * 1000));
    }
    assertEquals(
      [ours.count, ours.minUs, ours.maxUs, ours.meanUs],
      [theirs.totalCount, theirs.minNonZeroValue, theirs.maxValue, theirs.mean],
      String(values),
    );
  }
});

Deno.test("latencies recorded after a read, and histograms added, still all count", () => {
  const a = new LatencyHistogram();
  const b = new LatencyHistogram();
  const theirs = reference();
  for (let ms = 0.01; ms < 30; ms *= 1.01) {
    a.recordMs(ms);
    theirs.recordValue(Math.round(ms * 1000));
  }
  assertEquals(a.count, theirs.totalCount); // a read: a's pending latencies join its histogram
  for (let ms = 0.02; ms < 90; ms *= 1.02) {
    a.recordMs(ms);
    b.recordMs(ms * 2);
    theirs.recordValue(Math.round(ms * 1000));
    theirs.recordValue(Math.round(ms * 2 * 1000));
  }
  a.add(b); // b's latencies never read before: they must come along
  assertEquals([a.count, a.maxUs, a.minUs], [
    theirs.totalCount,
    theirs.maxValue,
    theirs.minNonZeroValue,
  ]);
  assertEquals(a.percentileDistribution(), theirs.outputPercentileDistribution(5, 1000));
  const copy = LatencyHistogram.fromSnapshot(structuredClone(b.snapshot()));
  assertEquals([copy.count, copy.atPercentile(99)], [b.count, b.atPercentile(99)]);
});
