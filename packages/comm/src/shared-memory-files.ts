/**
 * The same-host payload path of the ring all-reduce: one file per rank in a tmpfs directory
 * (/dev/shm), laid out like the tensor (the chunk at element e lies at byte 4e). A rank writes
 * what it sends into its own file and sends only the header over ZeroMQ as a doorbell; the
 * receiver reads the bytes straight into the checksum/add scratch (block by block, see
 * shared-memory-chunks.ts). That is one copy each way and no socket traffic for the payload;
 * a 64 MB exchange through a Unix socket costs several times more CPU (small socket buffers,
 * a wakeup per few hundred KiB).
 *
 * Why one region per segment is enough (no overwrite of bytes a peer still has to read):
 * a rank writes a given segment's region at most once per operation, and it writes it in
 * operation k+1 only after frames of operation k+1 have passed through every rank that reads
 * that region, and a rank handles frames of k+1 only after finishing k (ZeroMQ delivers each
 * pipe in order, and each operation consumes exactly its own frames). The payload checksum
 * in the header still guards every read: bytes that do not match are never applied.
 *
 * The files are mapped into every process that uses them when the native helper is built
 * (shared-mapping.ts): reads and writes are then memcpys. Otherwise they are pread/pwrite,
 * memory copies in the kernel at about half that speed. Either way a file is grown by writing
 * zeros, never truncated: tmpfs allocates its pages then, so a full /dev/shm is an error at
 * that point instead of a SIGBUS at a mapped write later.
 *
 * A file starts with a small owner record (magic, pid, pid namespace); the tensor bytes follow
 * at DATA_OFFSET. Files of killed processes (SIGKILL cannot clean up) are removed by the next
 * rank that creates a file in the same directory, when the owner record names a process of
 * this pid namespace that no longer exists.
 */
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { type MapFile, sharedMapping } from "./shared-mapping";

const DEFAULT_DIRECTORY = "/dev/shm";
/** Every shared-memory file of this package starts so; leftovers of dead processes are removed by it. */
export const FILE_PREFIX = "dino-comm-";
/** Names of the files behind allocateSharedTensor's tensors; peers open them by name, so nothing else is accepted. */
export const SHARED_TENSOR_PREFIX = `${FILE_PREFIX}tensor-`;
const SHARED_TENSOR_NAME = new RegExp(`^${SHARED_TENSOR_PREFIX}[0-9a-f-]+$`);
/** Shared tensor files of peers kept open at once (a training run has one per peer). */
const MAX_NAMED_FILES = 64;
const MAGIC = "DINOSHM1";
/**
 * Bytes before the tensor: the owner record, padded to a page, plus half a page. The kernel's
 * copy between a file and user memory runs several times slower when the destination address
 * lies 1..31 bytes (mod 4096) after the source; a large Float32Array starts 16 bytes into a
 * page (malloc's header), so reading tensor bytes at a page-aligned offset into it would hit
 * exactly that case, while 2048 bytes apart is fast.
 */
export const DATA_OFFSET = 4096 + 2048;
const OWNER_RECORD_BYTES = 256;
const ZERO_FILL_BYTES = 1 << 20;

function pidNamespace(): string | null {
  try {
    return fs.readlinkSync("/proc/self/ns/pid");
  } catch {
    return null;
  }
}

function ownerRecord(): Buffer {
  const record = Buffer.alloc(OWNER_RECORD_BYTES);
  record.write(`${MAGIC}\n${process.pid}\n${pidNamespace() ?? ""}\n`, "utf8");
  return record;
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: string }).code !== "ESRCH";
  }
}

/** Removes files in `directory` whose owner record names a dead process of this pid namespace. */
function removeFilesOfDeadProcesses(directory: string): void {
  const namespace = pidNamespace();
  if (namespace === null) return;
  let names: string[];
  try {
    names = fs.readdirSync(directory).filter((name) => name.startsWith(FILE_PREFIX));
  } catch {
    return;
  }
  const record = Buffer.alloc(OWNER_RECORD_BYTES);
  for (const name of names) {
    const file = path.join(directory, name);
    try {
      const fd = fs.openSync(file, "r");
      let length: number;
      try {
        length = fs.readSync(fd, record, 0, OWNER_RECORD_BYTES, 0);
      } finally {
        fs.closeSync(fd);
      }
      const [magic, pid, ownerNamespace] = record.toString("utf8", 0, length).split("\n");
      if (magic === MAGIC && ownerNamespace === namespace && /^\d+$/.test(pid) && !processExists(Number(pid))) fs.unlinkSync(file);
    } catch {
      // Vanished meanwhile, or not ours to read.
    }
  }
}

/** pwrite of all of `bytes` at `position` (a write may take only part of them). */
function writeFully(fd: number, bytes: Uint8Array, position: number): void {
  for (let done = 0; done < bytes.length; ) done += fs.writeSync(fd, bytes, done, bytes.length - done, position + done);
}

/** Own files still on disk, unlinked when the process exits normally (SIGKILL leaves them). */
const liveFiles = new Set<string>();
let exitHookInstalled = false;

function unlinkLiveFilesAtExit(): void {
  for (const file of liveFiles) {
    try {
      fs.unlinkSync(file);
    } catch {
      // Already gone.
    }
  }
}

/**
 * Creates `file` with this process's owner record (replacing a leftover of a killed process of
 * the same name) and returns its descriptor; the file is removed at exit or by removeOwnedFile.
 */
export function createOwnedFile(file: string): number {
  try {
    fs.unlinkSync(file);
  } catch {
    // Usually absent.
  }
  removeFilesOfDeadProcesses(path.dirname(file));
  const fd = fs.openSync(file, "wx+", 0o600);
  liveFiles.add(file);
  fs.writeSync(fd, ownerRecord(), 0, OWNER_RECORD_BYTES, 0);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once("exit", unlinkLiveFilesAtExit);
  }
  return fd;
}

/** Removes a file made by createOwnedFile (processes that opened it keep their descriptors and mappings). */
export function removeOwnedFile(file: string): void {
  if (!liveFiles.delete(file)) return;
  try {
    fs.unlinkSync(file);
  } catch {
    // Already gone.
  }
}

/**
 * Grows the data area of the file `fd` from `from` to `to` bytes by writing zeros (tmpfs
 * allocates the pages now, so a full /dev/shm fails here, not with a SIGBUS at a mapped write).
 */
export function growWithZeros(fd: number, from: number, to: number, directory: string): void {
  const zeros = new Uint8Array(Math.min(ZERO_FILL_BYTES, Math.max(0, to - from)));
  try {
    for (let at = from; at < to; at += zeros.length) writeFully(fd, zeros.subarray(0, Math.min(zeros.length, to - at)), DATA_OFFSET + at);
  } catch (err) {
    throw new Error(
      `shared memory ${directory} has no room for ${to} bytes of collective payload (${(err as Error).message}); ` +
        `give the process a larger /dev/shm, or set DINO_COMM_SHM_DIR="" to send payloads through sockets`,
    );
  }
}

/** A peer's file opened for reading, and its mapping once one was needed (as much as the file held then). */
interface PeerFile {
  fd: number;
  view?: Uint8Array;
}

/** Why a shared-memory payload could not be read; the frame is rejected with it. */
export interface SharedMemoryReadProblem {
  reason: "malformed" | "wrong-length";
  detail: string;
}

function tooShortProblem(label: string, end: number): SharedMemoryReadProblem {
  return { reason: "wrong-length", detail: `${label} ends before byte ${end}` };
}

export class SharedMemoryFiles {
  readonly directory: string;
  private readonly rank: number;
  private readonly paths: string[];
  private readonly peerFiles: Array<PeerFile | undefined>;
  /** Shared tensor files of peers, opened by name (see readNamed). */
  private readonly namedFiles = new Map<string, PeerFile>();
  private readonly map: MapFile | null;
  private ownFd: number | undefined;
  private ownMap: Uint8Array | undefined;
  private ownSize = 0;
  private closed = false;

  /**
   * The tmpfs directory to use, or null when there is none. DINO_COMM_SHM_DIR overrides it
   * (every rank of a group must see the same value); set it to "" to disable the path.
   */
  static usableDirectory(): string | null {
    const directory = process.env.DINO_COMM_SHM_DIR ?? DEFAULT_DIRECTORY;
    if (directory === "") return null;
    try {
      fs.accessSync(directory, fs.constants.W_OK | fs.constants.R_OK);
      return fs.statSync(directory).isDirectory() ? directory : null;
    } catch {
      return null;
    }
  }

  /** File names derive from the group's full identity, so every rank computes them alone. */
  constructor(directory: string, endpoints: readonly string[], epoch: number, rank: number, kind: "all-reduce" | "broadcast" = "all-reduce") {
    this.directory = directory;
    this.rank = rank;
    const key = createHash("sha256").update(`${kind}\n${epoch}\n${endpoints.join("\n")}`).digest("hex").slice(0, 24);
    this.paths = endpoints.map((_, r) => path.join(directory, `${FILE_PREFIX}${key}-${r}`));
    this.peerFiles = endpoints.map(() => undefined);
    this.map = sharedMapping();
  }

  /** Whether the files are mapped (memcpy) rather than read and written with pread/pwrite. */
  get mapped(): boolean {
    return this.map !== null;
  }

  pathOf(rank: number): string {
    return this.paths[rank];
  }

  /** Creates this rank's file (replacing a leftover of a killed process with the same group). */
  create(): void {
    this.ownFd = createOwnedFile(this.paths[this.rank]);
  }

  /** Grows this rank's file to hold a tensor of `bytes` bytes (done before any write of an operation). */
  reserve(bytes: number): void {
    if (bytes <= this.ownSize) return;
    growWithZeros(this.ownFd!, this.ownSize, bytes, this.directory);
    this.ownSize = bytes;
    if (this.map) this.ownMap = this.map(this.ownFd!, DATA_OFFSET + bytes, true);
  }

  /** Writes `source` at `byteOffset` of this rank's file. */
  write(source: Uint8Array, byteOffset: number): void {
    if (this.ownMap) {
      this.ownMap.set(source, DATA_OFFSET + byteOffset);
      return;
    }
    writeFully(this.ownFd!, source, DATA_OFFSET + byteOffset);
  }

  /** Where the tensor byte `byteOffset` lies in a file, modulo 64 (to align scratch blocks with it). */
  alignmentOf(byteOffset: number): number {
    return (DATA_OFFSET + byteOffset) % 64;
  }

  /** Fills `target` from this rank's own file at `byteOffset` (bytes this rank wrote). */
  readOwn(target: Uint8Array, byteOffset: number): void {
    if (byteOffset + target.length > this.ownSize) {
      throw new Error(`own shared-memory file ${this.paths[this.rank]} ends before byte ${byteOffset + target.length}`);
    }
    if (this.ownMap) {
      target.set(this.ownMap.subarray(DATA_OFFSET + byteOffset, DATA_OFFSET + byteOffset + target.length));
      return;
    }
    let done = 0;
    while (done < target.length) {
      done += fs.readSync(this.ownFd!, target, done, target.length - done, DATA_OFFSET + byteOffset + done);
    }
  }

  /** Opens every peer file that exists now (peers without the shared-memory path have none). */
  openPeers(): void {
    for (let r = 0; r < this.paths.length; r++) if (r !== this.rank) this.peerFile(r);
  }

  /** Fills `target` from `rank`'s file at `byteOffset`; a problem if the file is missing or too short. */
  read(rank: number, target: Uint8Array, byteOffset: number): SharedMemoryReadProblem | null {
    const file = this.peerFile(rank);
    if (file === undefined) return { reason: "malformed", detail: `shared-memory file of rank ${rank} (${this.paths[rank]}) cannot be opened` };
    return this.readFrom(file, `shared-memory file of rank ${rank}`, target, byteOffset);
  }

  /**
   * Fills `target` from the shared tensor file `name` (allocateSharedTensor) in this directory
   * at `byteOffset`; a problem if the name is not one, or the file is missing or too short.
   */
  readNamed(name: string, target: Uint8Array, byteOffset: number): SharedMemoryReadProblem | null {
    const file = this.namedFile(name);
    if (!("fd" in file)) return file;
    return this.readFrom(file, `shared tensor file ${name}`, target, byteOffset);
  }

  /**
   * A read-only view of `bytes` bytes of the shared tensor file `name` at `byteOffset`, where
   * they lie (no copy; it follows the file's later changes); null where files are not mapped
   * (no native helper: use readNamed), or the problem with the name or the file's length.
   */
  viewNamed(name: string, byteOffset: number, bytes: number): Uint8Array | null | SharedMemoryReadProblem {
    if (!this.map) return null;
    const file = this.namedFile(name);
    if (!("fd" in file)) return file;
    return this.mappedBytes(this.map, file, `shared tensor file ${name}`, byteOffset, bytes);
  }

  private namedFile(name: string): PeerFile | SharedMemoryReadProblem {
    let file = this.namedFiles.get(name);
    if (file) return file;
    if (this.closed || !SHARED_TENSOR_NAME.test(name)) return { reason: "malformed", detail: `"${name}" is not a shared tensor file name` };
    // Peers that allocate tensors over and over would otherwise pile up descriptors here;
    // the ones still in use are simply opened again.
    if (this.namedFiles.size >= MAX_NAMED_FILES) this.closeNamedFiles();
    try {
      file = { fd: fs.openSync(path.join(this.directory, name), "r") };
    } catch (err) {
      return { reason: "malformed", detail: `shared tensor file ${name} cannot be opened (${(err as Error).message})` };
    }
    this.namedFiles.set(name, file);
    return file;
  }

  private readFrom(file: PeerFile, label: string, target: Uint8Array, byteOffset: number): SharedMemoryReadProblem | null {
    if (this.map) {
      const view = this.mappedBytes(this.map, file, label, byteOffset, target.length);
      if (!(view instanceof Uint8Array)) return view;
      target.set(view);
      return null;
    }
    const start = DATA_OFFSET + byteOffset;
    let done = 0;
    while (done < target.length) {
      const n = fs.readSync(file.fd, target, done, target.length - done, start + done);
      if (n === 0) return tooShortProblem(label, byteOffset + target.length);
      done += n;
    }
    return null;
  }

  /** `bytes` bytes of `file` at `byteOffset`, where they lie in its (read-only) mapping; a problem if the file ends before them. */
  private mappedBytes(map: MapFile, file: PeerFile, label: string, byteOffset: number, bytes: number): Uint8Array | SharedMemoryReadProblem {
    const start = DATA_OFFSET + byteOffset;
    if (!file.view || file.view.length < start + bytes) {
      // Map only what the file holds now: touching a mapping past the end of its file faults.
      const size = fs.fstatSync(file.fd).size;
      if (size < start + bytes) return tooShortProblem(label, byteOffset + bytes);
      file.view = map(file.fd, size, false);
    }
    return file.view.subarray(start, start + bytes);
  }

  /** Closes every descriptor and removes this rank's file (peers that opened it keep reading it). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.ownFd !== undefined) fs.closeSync(this.ownFd);
    for (const file of this.peerFiles) if (file) fs.closeSync(file.fd);
    this.closeNamedFiles();
    // Mappings go when the garbage collector frees their buffers; dropping them here lets it.
    this.peerFiles.fill(undefined);
    this.ownFd = undefined;
    this.ownMap = undefined;
    removeOwnedFile(this.paths[this.rank]);
  }

  private closeNamedFiles(): void {
    for (const { fd } of this.namedFiles.values()) fs.closeSync(fd);
    this.namedFiles.clear();
  }

  private peerFile(rank: number): PeerFile | undefined {
    if (this.closed) return undefined;
    if (!this.peerFiles[rank]) {
      try {
        this.peerFiles[rank] = { fd: fs.openSync(this.paths[rank], "r") };
      } catch {
        return undefined;
      }
    }
    return this.peerFiles[rank];
  }
}
