/**
 * Result types. The shapes themselves are generated into generated.ts from the daemon's
 * `rpc.methods` answer: every method declares its result there (`result`, a schema the
 * daemon derives from its handler's return type), and codegen/render.ts turns each schema
 * into interfaces named after the daemon's classes (`HostInfo`, `FileInfo`, `AlertRecord`).
 *
 * Written here by hand: what an `rpc.methods` entry looks like (the generator reads it
 * before any generated.ts exists), `FsPath`, and the names this package exported before
 * the result types were generated, as aliases of the generated ones.
 *
 * Naming: nothing here ends in `Params` or `Result`; those names belong to generated.ts.
 */
import type {
  AlertRecord,
  ChmodResult,
  CpuUsage,
  DiskIO,
  DiskIOUsage,
  DiskRow,
  Disks,
  FileInfo,
  HashResult,
  HostInfo,
  Interface,
  LoadAverages,
  MemoryUsage,
  MethodMap,
  MethodName,
  MkdirResult,
  NetworkUsage,
  Port,
  Ports,
  ProcessDetails,
  ProcessList,
  ReadResult,
  RemoveResult,
  Sensors,
  SignalSent,
  SilenceRecord,
  TailResult,
  TransferResult,
  Users,
  WriteResult,
} from "./generated.js";

/** A generic result map, for methods whose result shape this build does not know. */
export type AnyResult = Record<string, unknown>;

/** One parameter in `rpc.methods`. */
export interface MethodParamInfo {
  name: string;
  /** Wire type: `int`, `float`, `str`, `bool`, `bin`, `map`, `any`, `list[T]`, unions `a|b`. */
  type: string;
  required: boolean;
  default?: unknown;
  nullable?: boolean;
  choices?: unknown[];
  min?: number;
  max?: number;
  summary: string;
  [key: string]: unknown;
}

/**
 * The schema of a result (or of a part of one) in `rpc.methods`, in the parameters'
 * vocabulary: `type` is the wire type (`int`, `float`, `str`, `bool`, `bin`, `nil`, `any`,
 * `map`, `list[T]`, unions `a|b`; `str|bin` is a file name), `fields` the keys of a map
 * (`title`: the daemon's class name), `items` a list's elements, `values` a map's values.
 */
export interface ResultSchema {
  type: string;
  nullable?: boolean;
  choices?: unknown[];
  /** The class's docstring, or the field's. */
  summary?: string;
  title?: string;
  fields?: ResultField[];
  items?: ResultSchema;
  values?: ResultSchema;
  [key: string]: unknown;
}

/** One key of a map with `fields`. */
export interface ResultField extends ResultSchema {
  name: string;
  /** false: the key may be absent. */
  required?: boolean;
}

/** One method in `rpc.methods`. */
export interface MethodInfo {
  name: string;
  summary: string;
  description?: string;
  params: MethodParamInfo[];
  /** The schema of its result. */
  result?: ResultSchema;
  /** For subscription methods: the notification they push, e.g. `watch.event`. */
  streams?: string;
  /** Honours `progress: true`. */
  progress?: boolean;
  /** Read-only. */
  safe?: boolean;
  [key: string]: unknown;
}

/** The answer of a subscription method. */
export interface SubscriptionStarted {
  subscription: string;
  [key: string]: unknown;
}

/**
 * A path or file name as the daemon sends it: a string, or the raw bytes (msgpack bin) when
 * the name is not valid UTF-8 (legal on Linux). Pass either back as a path parameter; decode
 * for display with `new TextDecoder().decode(p)` (lossy) or keep the bytes.
 */
export type FsPath = string | Uint8Array;

// ------------------------------------------------------------------ earlier names
// Aliases of the generated types under the names this package exported before.

/** `sys.info`. */
export type SysInfo = HostInfo;
/** `sys.cpu`. */
export type SysCpu = CpuUsage;
/** `sys.memory`. */
export type SysMemory = MemoryUsage;
/** One row of `sys.disks`. */
export type Disk = DiskRow;
/** `sys.disks`. */
export type SysDisks = Disks;
/** Counters and rates of one disk, or of all. */
export type DiskIoCounters = DiskIO;
/** `sys.disk_io`. */
export type SysDiskIo = DiskIOUsage;
/** One interface of `sys.network`. */
export type NetworkInterface = Interface;
/** `sys.network`. */
export type SysNetwork = NetworkUsage;
/** `sys.load`. */
export type SysLoad = LoadAverages;
/** `sys.processes`. */
export type SysProcesses = ProcessList;
/** `sys.process`. */
export type SysProcess = ProcessDetails;
/** `sys.sensors`. */
export type SysSensors = Sensors;
/** `sys.users`. */
export type SysUsers = Users;
/** One row of `sys.ports`. */
export type ListeningPort = Port;
/** `sys.ports`. */
export type SysPorts = Ports;
/** `sys.kill`. */
export type SysKill = SignalSent;

/** What an entry is: `file`, `dir`, `symlink`, `fifo`, `socket`, `char_device`, ... */
export type EntryType = FileInfo["type"];
/** `fs.read`. */
export type FileContent = ReadResult;
/** `fs.write`. */
export type Written = WriteResult;
/** `fs.mkdir`. */
export type Mkdir = MkdirResult;
/** `fs.remove`. */
export type Removed = RemoveResult;
/** `fs.copy`, `fs.move`. */
export type Transfer = TransferResult;
/** `fs.hash`. */
export type Hash = HashResult;
/** `fs.tail`. */
export type Tail = TailResult;
/** `fs.chmod`. */
export type Chmod = ChmodResult;

/** An alert (monitor.alert notifications, monitor.history, monitor.test). */
export type Alert = AlertRecord;
/** A silence. */
export type Silence = SilenceRecord;
/** `monitor.silence`: the new silence. */
export type SilenceCreated = SilenceRecord;

/** Result shapes by method name. */
export type KnownResults = { [M in MethodName]: MethodMap[M]["result"] };

/** The result of method `M` (a generic map for methods this build does not know). */
export type ResultOf<M extends string> = M extends keyof MethodMap ? MethodMap[M]["result"] : AnyResult;
