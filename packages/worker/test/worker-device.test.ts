import { workerDevice } from "../src/worker";

describe("the device a worker runs on", () => {
  test("cuda: worker r of a local launch takes GPU r; a pod (one visible GPU) takes cuda:0", () => {
    expect(workerDevice("cuda", 3, true)).toEqual({ kind: "cuda", index: 3 });
    expect(workerDevice("cuda", 3, false)).toEqual({ kind: "cuda", index: 0 });
  });

  test("an explicit cuda:i is kept", () => {
    expect(workerDevice("cuda:1", 3, true)).toEqual({ kind: "cuda", index: 1 });
  });

  test("webgpu: every worker takes the adapter Dawn offers (it cannot choose one)", () => {
    expect(workerDevice("webgpu", 2, true)).toEqual({ kind: "webgpu", index: 0 });
  });

  test("cpu stays cpu", () => {
    expect(workerDevice("cpu", 5, true)).toEqual({ kind: "cpu" });
  });
});
