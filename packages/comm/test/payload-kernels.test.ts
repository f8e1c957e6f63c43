import { PayloadKernels } from "../src";
import { STREAM_BLOCK_BYTES } from "../src/payload-kernels";
import { bytesOfArray, randomValues } from "./support/rings";

describe("PayloadKernels", () => {
  const kernels = new PayloadKernels(4096);

  it("adds float32 payloads bitwise like IEEE single precision, including specials", () => {
    const received = randomValues(1001, 1).map((x) => x * 1e3);
    const local = randomValues(1001, 2).map((x) => x * 1e-3);
    received.set([Infinity, -0, 1e-45, 3.4e38, -5], 0);
    local.set([1, 0, 1e-45, 3.4e38, 5], 0);
    const expected = received.map((x, i) => Math.fround(x + local[i]));
    const receivedBytes = bytesOfArray(received);
    const sumChecksum = kernels.accumulateVerified(receivedBytes, bytesOfArray(local), kernels.checksum(receivedBytes));
    expect(sumChecksum).toBe(kernels.checksum(receivedBytes));
    expect(bytesOfArray(received).equals(bytesOfArray(expected))).toBe(true);
  });

  it("leaves the received payload untouched when its checksum does not match", () => {
    const received = randomValues(64, 3);
    const before = Float32Array.from(received);
    const bytes = bytesOfArray(received);
    expect(kernels.accumulateVerified(bytes, bytesOfArray(randomValues(64, 4)), kernels.checksum(bytes) ^ 1)).toBeNull();
    expect(bytesOfArray(received).equals(bytesOfArray(before))).toBe(true);
  });

  it("changes the checksum for any flipped bit, swapped words, or different length", () => {
    const payload = Buffer.from(bytesOfArray(randomValues(257, 5)));
    const reference = kernels.checksum(payload);
    const seen = new Set<number>([reference]);
    for (let bit = 0; bit < payload.length * 8; bit += 7) {
      payload[bit >> 3] ^= 1 << (bit & 7);
      expect(kernels.checksum(payload)).not.toBe(reference);
      payload[bit >> 3] ^= 1 << (bit & 7);
    }
    const swapped = Buffer.from(payload);
    swapped.copy(swapped, 0, 16, 20);
    payload.copy(swapped, 16, 0, 4);
    expect(kernels.checksum(swapped)).not.toBe(reference);
    for (const length of [0, 4, 12, 16, 20, payload.length - 4]) seen.add(kernels.checksum(payload.subarray(0, length)));
    expect(seen.size).toBe(7);
  });

  it("refuses payloads larger than its scratch", () => {
    expect(() => kernels.checksum(new Uint8Array(4100))).toThrow(RangeError);
  });
});

describe("PayloadKernels scratch (shared-memory path)", () => {
  const kernels = new PayloadKernels(4096);

  it("checksums and adds in the scratch exactly like the copying methods, for lengths not a multiple of 16", () => {
    for (const elements of [1, 3, 5, 257, 1024]) {
      const received = bytesOfArray(randomValues(elements, 10 + elements));
      const local = bytesOfArray(randomValues(elements, 20 + elements));
      // Leave garbage after the payload in the scratch: padding must not depend on it.
      kernels.scratch(4096).fill(0xab);
      kernels.scratch(received.length).set(received);
      expect(kernels.checksumScratch(received.length)).toBe(kernels.checksum(received));

      const copy = Buffer.from(received);
      const expectedSum = kernels.accumulateVerified(copy, local, kernels.checksum(received));
      kernels.scratch(4096).fill(0xcd);
      kernels.scratch(received.length).set(received);
      expect(kernels.accumulateScratchVerified(local, kernels.checksum(received))).toBe(expectedSum);
      expect(Buffer.from(kernels.scratch(received.length)).equals(copy)).toBe(true);
    }
  });

  it("returns null for a scratch payload whose checksum does not match, and refuses oversized lengths", () => {
    const payload = bytesOfArray(randomValues(100, 7));
    kernels.scratch(payload.length).set(payload);
    expect(kernels.accumulateScratchVerified(bytesOfArray(randomValues(100, 8)), kernels.checksum(payload) ^ 1)).toBeNull();
    expect(() => kernels.scratch(4100)).toThrow(RangeError);
  });
});

describe("PayloadKernels streams (blocks of a payload that lives in a file)", () => {
  it("gives the whole-payload checksums and sums for any block split and any scratch alignment", () => {
    const kernels = new PayloadKernels(4096);
    expect(kernels.blockBytes).toBe(4096);
    for (const [elements, blockBytes, alignment] of [[1, 16, 0], [257, 64, 5], [1000, 1024, 63], [1024, 4096, 17]]) {
      const received = bytesOfArray(randomValues(elements, 30 + elements));
      const local = bytesOfArray(randomValues(elements, 40 + elements));
      const sums = Buffer.from(received);
      const receivedChecksum = kernels.checksum(received);
      const sumChecksum = kernels.accumulateVerified(sums, local, receivedChecksum);

      kernels.startStream();
      for (let start = 0; start < received.length; start += blockBytes) {
        const view = kernels.blockView(Math.min(blockBytes, received.length - start), alignment);
        expect(view.byteOffset % 64).toBe(alignment);
        view.set(received.subarray(start, start + view.length));
        kernels.checksumBlock(view);
      }
      expect(kernels.streamChecksum(received.length)).toBe(receivedChecksum);

      const streamed = Buffer.alloc(received.length);
      kernels.startStream();
      for (let start = 0; start < received.length; start += blockBytes) {
        const view = kernels.blockView(Math.min(blockBytes, received.length - start), alignment);
        view.set(received.subarray(start, start + view.length));
        kernels.accumulateBlock(view, local.subarray(start, start + view.length));
        streamed.set(view, start);
      }
      expect(kernels.streamChecksum(received.length)).toBe(receivedChecksum);
      expect(kernels.streamSumChecksum(received.length)).toBe(sumChecksum);
      expect(streamed.equals(sums)).toBe(true);
    }
  });

  it("sums several addends block by block like float32 additions in order, and checksums only the finished sums", () => {
    const kernels = new PayloadKernels(4096);
    for (const [elements, blockBytes] of [[1, 16], [257, 64], [1000, 1024], [1023, 4096]]) {
      const addends = [0, 1, 2, 3].map((k) => randomValues(elements, 70 + 10 * elements + k).map((x) => x * 10 ** (k - 1)));
      const expected = addends[0].map((x, i) => Math.fround(Math.fround(Math.fround(x + addends[1][i]) + addends[2][i]) + addends[3][i]));
      const sums = Buffer.alloc(elements * 4);
      kernels.startStream();
      for (let start = 0; start < sums.length; start += blockBytes) {
        const length = Math.min(blockBytes, sums.length - start);
        const view = kernels.blockView(length, start % 64);
        view.set(bytesOfArray(addends[0]).subarray(start, start + length));
        const addend = kernels.addendView(length);
        for (const values of addends.slice(1)) {
          addend.set(bytesOfArray(values).subarray(start, start + length));
          kernels.addBlock(view, addend);
        }
        kernels.checksumBlock(view);
        sums.set(view, start);
      }
      expect(sums.equals(bytesOfArray(expected))).toBe(true);
      expect(kernels.streamChecksum(sums.length)).toBe(kernels.checksum(sums));
    }
  });

  it("caps blocks at STREAM_BLOCK_BYTES and refuses larger ones", () => {
    const kernels = new PayloadKernels(1 << 20);
    expect(kernels.blockBytes).toBe(STREAM_BLOCK_BYTES);
    expect(() => kernels.blockView(STREAM_BLOCK_BYTES + 16, 0)).toThrow(RangeError);
  });
});

describe("PayloadKernels over a collective tensor (the tensor lies in the kernels' memory)", () => {
  it("checksums and adds tensor blocks where they lie, exactly like copies, without touching the bytes around them", () => {
    const kernels = new PayloadKernels(8192, 2000);
    expect(kernels.tensor.length).toBe(2000);
    kernels.tensor.set(randomValues(2000, 91));
    const before = Buffer.from(bytesOfArray(kernels.tensor));
    const tensorBytes = bytesOfArray(kernels.tensor);
    // Odd element offsets and lengths: blocks start off vector boundaries and end in a partial vector.
    for (const [first, elements, blockBytes] of [[0, 1, 16], [3, 257, 64], [1, 1000, 1024], [7, 1024, 4096], [0, 2000, 4096]]) {
      const local = new Uint8Array(tensorBytes.buffer, tensorBytes.byteOffset + first * 4, elements * 4);
      const copy = Buffer.from(local);
      expect(kernels.holds(local)).toBe(true);
      expect(kernels.holds(copy)).toBe(false);
      const received = bytesOfArray(randomValues(elements, 92 + elements));

      kernels.startStream();
      for (let start = 0; start < local.length; start += blockBytes) kernels.checksumBlock(local.subarray(start, Math.min(start + blockBytes, local.length)));
      expect(kernels.streamChecksum(local.length)).toBe(kernels.checksum(copy));

      const sums = Buffer.from(received);
      const sumChecksum = kernels.accumulateVerified(sums, copy, kernels.checksum(received));
      const streamed = Buffer.alloc(received.length);
      kernels.startStream();
      for (let start = 0; start < received.length; start += blockBytes) {
        const view = kernels.blockView(Math.min(blockBytes, received.length - start), 0);
        view.set(received.subarray(start, start + view.length));
        kernels.accumulateBlock(view, local.subarray(start, start + view.length));
        streamed.set(view, start);
      }
      expect(kernels.streamSumChecksum(received.length)).toBe(sumChecksum);
      expect(streamed.equals(sums)).toBe(true);
    }
    expect(Buffer.from(bytesOfArray(kernels.tensor)).equals(before)).toBe(true);
  });

  it("refuses a tensor larger than WebAssembly memory, and tensor blocks larger than a stream block", () => {
    expect(() => new PayloadKernels(4096, 2 ** 30)).toThrow(/does not fit in WebAssembly memory/);
    const kernels = new PayloadKernels(4096, 4096);
    expect(() => kernels.checksumBlock(bytesOfArray(kernels.tensor))).toThrow(RangeError);
  });
});
