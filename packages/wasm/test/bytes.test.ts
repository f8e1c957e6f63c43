import { END, f32Bytes, f64Bytes, get, I32, i32c, loopUntil, MODULE_HEADER, name, section, set, simd, sized, sleb, sleb64, tee, uleb, vec, webAssembly } from "../src";

describe("WebAssembly byte encoders", () => {
  it("encode LEB128 as the binary format's examples do", () => {
    expect(uleb(0)).toEqual([0x00]);
    expect(uleb(127)).toEqual([0x7f]);
    expect(uleb(128)).toEqual([0x80, 0x01]);
    expect(uleb(624485)).toEqual([0xe5, 0x8e, 0x26]);
    expect(uleb(0xffffffff)).toEqual([0xff, 0xff, 0xff, 0xff, 0x0f]);
    expect(sleb(-1)).toEqual([0x7f]);
    expect(sleb(63)).toEqual([0x3f]);
    expect(sleb(64)).toEqual([0xc0, 0x00]);
    expect(sleb(-123456)).toEqual([0xc0, 0xbb, 0x78]);
    expect(sleb(-(2 ** 31))).toEqual([0x80, 0x80, 0x80, 0x80, 0x78]);
    expect(sleb64(-1n)).toEqual([0x7f]);
    expect(sleb64(-123456n)).toEqual([0xc0, 0xbb, 0x78]);
    expect(sleb64((1n << 63n) - 1n)).toEqual([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00]);
  });

  it("spell float constants little-endian and names as length-prefixed UTF-8", () => {
    expect(f32Bytes(1)).toEqual([0x00, 0x00, 0x80, 0x3f]);
    expect(f64Bytes(-2)).toEqual([0, 0, 0, 0, 0, 0, 0x00, 0xc0]);
    expect(name("ä")).toEqual([2, 0xc3, 0xa4]);
    expect(vec([[1], [2, 3]])).toEqual([2, 1, 2, 3]);
    expect(sized(new Array(200).fill(0)).slice(0, 2)).toEqual([0xc8, 0x01]);
  });

  it("spell the shared instructions with LEB128 immediates", () => {
    expect(get(3)).toEqual([0x20, 3]);
    expect(set(200)).toEqual([0x21, 0xc8, 0x01]);
    expect(tee(0)).toEqual([0x22, 0]);
    expect(i32c(0xffffffff)).toEqual([0x41, 0x7f]);
    expect(i32c(-123456)).toEqual([0x41, 0xc0, 0xbb, 0x78]);
    expect(simd(0xae)).toEqual([0xfd, 0xae, 0x01]);
    expect(simd(0x0b, 0, 0)).toEqual([0xfd, 0x0b, 0, 0]);
    // block, loop; local.get 1 < local.get 2 else br_if 1; body; br 0; end; end
    expect(loopUntil(1, 2, [0x01])).toEqual([0x02, 0x40, 0x03, 0x40, 0x20, 1, 0x20, 2, 0x4f, 0x0d, 1, 0x01, 0x0c, 0, 0x0b, 0x0b]);
  });

  it("assemble a module that validates and runs (i64 and f64 constants included)", () => {
    const f64 = 0x7c;
    // f(): f64 = f64.const -2.5 + f64.convert_i64_s(i64.const -3000000000)
    const body = [0x00, 0x44, ...f64Bytes(-2.5), 0x42, ...sleb64(-3_000_000_000n), 0xb9, 0xa0, 0x0b];
    const bytes = Uint8Array.from([
      ...MODULE_HEADER,
      ...section(1, vec([[0x60, ...vec([]), ...vec([[f64]])]])),
      ...section(3, vec([[0]])),
      ...section(7, vec([[...name("f"), 0x00, 0]])),
      ...section(10, vec([sized(body)])),
    ]);
    expect(webAssembly!.validate(bytes)).toBe(true);
    const instance = new webAssembly!.Instance(new webAssembly!.Module(bytes), {});
    expect((instance.exports.f as () => number)()).toBe(-3_000_000_002.5);
  });

  it("run loopUntil as a while loop over locals", () => {
    // sum(n): i32 { let i = 0, acc = 0; while (i < n) { acc += i; i += 1 } return acc }  (locals: 0 n, 1 i, 2 acc)
    const i32Add = 0x6a;
    const loop = loopUntil(1, 0, [...get(2), ...get(1), i32Add, ...set(2), ...get(1), ...i32c(1), i32Add, ...set(1)]);
    const body = [...vec([[2, I32]]), ...loop, ...get(2), END];
    const bytes = Uint8Array.from([
      ...MODULE_HEADER,
      ...section(1, vec([[0x60, ...vec([[I32]]), ...vec([[I32]])]])),
      ...section(3, vec([[0]])),
      ...section(7, vec([[...name("sum"), 0x00, 0]])),
      ...section(10, vec([sized(body)])),
    ]);
    const sum = new webAssembly!.Instance(new webAssembly!.Module(bytes), {}).exports.sum as (n: number) => number;
    expect([0, 1, 5, 100].map(sum)).toEqual([0, 0, 10, 4950]);
  });
});
