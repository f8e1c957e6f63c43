import { LAUNCH_DEFAULTS, resolveLaunch, UsageError, type LaunchFlags } from "../src/run-config";
import { flags, given } from "./launch-flags";

describe("resolveLaunch", () => {
  it("keeps main_dino.py's defaults", () => {
    const { config, workers, warnings } = resolveLaunch(flags(), given(), { cudaInstalled: () => true });
    expect(config.model).toMatchObject({ embedDim: 384, depth: 12, numHeads: 6, patchSize: 16, outDim: 65536, normLastLayer: true, dropPathRate: 0.1, imgSize: 224, localCropSize: 96 });
    expect(config).toMatchObject({
      momentumTeacher: 0.996, warmupTeacherTemp: 0.04, teacherTemp: 0.04, warmupTeacherTempEpochs: 0, weightDecay: 0.04, weightDecayEnd: 0.4,
      clipGrad: 3, batchSizePerGpu: 64, epochs: 100, freezeLastLayer: 1, lr: 0.0005, warmupEpochs: 10, minLr: 1e-6, optimizer: "adamw",
      globalCropsScale: [0.4, 1], localCropsNumber: 8, localCropsScale: [0.05, 0.4], saveckpFreq: 20, seed: 0, numWorkers: 10, gpus: 16, device: "cuda",
    });
    expect(workers).toBe("local");
    expect(warnings).toEqual([]);
  });

  it("falls back from --device auto to cpu with a warning where CUDA is not installed", () => {
    const { config, warnings } = resolveLaunch(flags(), given(), { cudaInstalled: () => false });
    expect(config.device).toBe("cpu");
    expect(warnings.join()).toMatch(/neither the CUDA execution provider nor a WebGPU adapter/);
  });

  it("--device auto takes webgpu where CUDA is missing but a WebGPU adapter answers", () => {
    const { config, warnings } = resolveLaunch(flags(), given(), { cudaInstalled: () => false, webgpuAvailable: () => true });
    expect(config.device).toBe("webgpu");
    expect(warnings.join()).toMatch(/training on webgpu/);
  });

  it.each(["webgpu", "webgpu:0", "cuda:1", "cpu"])("--device %s is accepted as given", (device) => {
    expect(resolveLaunch(flags({ device }), given("device")).config.device).toBe(device);
  });

  it("--preset tiny gives the small demo model, and explicit flags override it", () => {
    const tiny = resolveLaunch(flags({ preset: "tiny" }), given()).config.model;
    expect(tiny).toMatchObject({ imgSize: 32, localCropSize: 16, patchSize: 8, outDim: 256 });
    const overridden = resolveLaunch(flags({ preset: "tiny", outDim: "128", patchSize: "16" }), given("outDim", "patchSize")).config.model;
    expect(overridden).toMatchObject({ outDim: 128, patchSize: 16, imgSize: 32 });
  });

  it("--preset tiny sizes a short CPU run: batch 8 per worker, 10 epochs, 2 warm-up epochs, 4 local crops", () => {
    const { config } = resolveLaunch(flags({ preset: "tiny" }), given());
    expect(config).toMatchObject({ batchSizePerGpu: 8, epochs: 10, warmupEpochs: 2, localCropsNumber: 4 });
    const explicit = resolveLaunch(flags({ preset: "tiny", batchSizePerGpu: "2" }), given("batchSizePerGpu")).config;
    expect(explicit.batchSizePerGpu).toBe(2);
  });

  it.each<[Partial<LaunchFlags>, RegExp]>([
    [{ arch: "vit_huge" }, /--arch must be one of vit_tiny, vit_small, vit_base, got "vit_huge"/],
    [{ patchSize: "12" }, /--patch-size must be 16 or 8/],
    [{ gpus: "0" }, /--gpus must be an integer in \[1, 1024\], got "0"/],
    [{ gpus: "two" }, /--gpus must be an integer/],
    [{ batchSizePerGpu: "3.5" }, /--batch-size-per-gpu must be an integer >= 1, got "3.5"/],
    [{ lr: "-1" }, /--lr must be a number >= 0, got "-1"/],
    [{ momentumTeacher: "1.5" }, /--momentum-teacher must be a number in \[0, 1\]/],
    [{ dropPathRate: "1" }, /--drop-path-rate must be a number in \[0, 1\)/],
    [{ normLastLayer: "maybe" }, /--norm-last-layer must be true\/false/],
    [{ globalCropsScale: ["0.4"] }, /--global-crops-scale takes two numbers/],
    [{ localCropsScale: ["0.5", "0.4"] }, /--local-crops-scale takes two numbers 0 < low <= high <= 1, got "0.5 0.4"/],
    [{ optimizer: "lars" }, /--optimizer lars is not supported yet/],
    [{ optimizer: "rmsprop" }, /--optimizer must be one of adamw, sgd, lars/],
    [{ device: "tpu" }, /--device must be cuda, cuda:<i>, webgpu, cpu or auto, got "tpu"/],
    [{ device: "webgpu:1" }, /--device must be cuda, cuda:<i>, webgpu, cpu or auto, got "webgpu:1"/],
    [{ workers: "remote" }, /--workers must be "local" or "external"/],
    [{ port: "70000" }, /--port must be an integer in \[0, 65535\]/],
    [{ useFp16: "true" }, /--use-fp16 true is not supported/],
    [{ warmupTeacherTempEpochs: "200" }, /--warmup-teacher-temp-epochs \(200\) cannot exceed --epochs \(100\)/],
    [{ dataPath: LAUNCH_DEFAULTS.dataPath }, /--data-path is required/],
    [{ preset: "huge" }, /--preset must be "tiny"/],
    [{ threadsPerWorker: "0" }, /--threads-per-worker must be an integer in \[1, 1024\]/],
  ])("refuses %o", (bad, message) => {
    expect(() => resolveLaunch(flags(bad), given(...(Object.keys(bad) as Array<keyof LaunchFlags>)))).toThrow(UsageError);
    expect(() => resolveLaunch(flags(bad), given(...(Object.keys(bad) as Array<keyof LaunchFlags>)))).toThrow(message);
  });

  it("refuses --arch together with --preset tiny", () => {
    expect(() => resolveLaunch(flags({ preset: "tiny", arch: "vit_base" }), given("arch"))).toThrow(/--arch cannot be combined with --preset tiny/);
  });

  it("accepts a warm-up longer than the run, with a warning", () => {
    const { config, warnings } = resolveLaunch(flags({ epochs: "1" }), given("epochs"), { cudaInstalled: () => false });
    expect(config.warmupEpochs).toBe(10);
    expect(warnings.join()).toMatch(/--warmup-epochs 10 exceeds --epochs 1/);
  });
});
