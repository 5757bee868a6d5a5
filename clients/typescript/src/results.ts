/**
 * Result shapes. `rpc.methods` describes parameters but not results, so the shapes of
 * results are written here by hand from PROTOCOL.md and the daemon's handlers; the
 * generated wrappers (generated.ts) pick them up by method name through `ResultOf`, and
 * fall back to a generic map for methods not listed.
 *
 * Naming: nothing here ends in `Params` or `Result`; those names belong to generated.ts.
 */

/** A generic result map, for methods whose result shape is not described here. */
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

/** One method in `rpc.methods`. */
export interface MethodInfo {
  name: string;
  summary: string;
  description?: string;
  params: MethodParamInfo[];
  /** For subscription methods: the notification they push, e.g. `watch.event`. */
  streams?: string;
  /** Honours `progress: true`. */
  progress?: boolean;
  [key: string]: unknown;
}

export interface Hello {
  protocol: number;
  server: string;
  version: string;
  pid: number;
  methods: string[];
  capabilities: string[];
  /** The daemon's max_frame. */
  max_frame_bytes?: number;
  [key: string]: unknown;
}

export interface Pong {
  pong: boolean;
  /** Seconds since the Unix epoch. */
  ts: number;
}

export interface MethodList {
  methods: MethodInfo[];
  [key: string]: unknown;
}

/** The answer of a subscription method. */
export interface SubscriptionStarted {
  subscription: string;
  [key: string]: unknown;
}

// ---------------------------------------------------------------------------- sys
// Field names are psutil's with the unit in the name: `*_bytes` integer bytes, `*_s`
// seconds, `*_at` epoch seconds, `*_per_s` rates; `percent` is 0..100 and `ts` is when
// the values were read (epoch seconds).

export interface DiskSummary {
  mountpoint: string;
  device: string;
  fstype: string;
  total_bytes: number | null;
  used_bytes: number | null;
  free_bytes: number | null;
  percent: number | null;
  [key: string]: unknown;
}

export interface InterfaceSummary {
  name: string;
  isup: boolean;
  addresses: string[];
  bytes_sent_per_s: number;
  bytes_recv_per_s: number;
  [key: string]: unknown;
}

/** `sys.info`: host identity and totals. */
export interface SysInfo {
  hostname: string;
  os: string;
  system: string;
  kernel: string;
  arch: string;
  /** Epoch seconds. */
  booted_at: number;
  uptime_s: number;
  cpu_count_logical: number;
  cpu_count_physical: number | null;
  cpu_model: string;
  cpu_percent: number;
  memory_total_bytes: number;
  memory_available_bytes: number;
  memory_percent: number;
  swap_total_bytes: number;
  swap_percent: number;
  /** Load averages over 1, 5 and 15 minutes. */
  load: number[];
  disks: DiskSummary[];
  network: InterfaceSummary[];
  python: string;
  ts: number;
  [key: string]: unknown;
}

/** `sys.cpu`: use over the last sampling interval. */
export interface SysCpu {
  percent: number;
  /** Present unless `per_cpu: false`. */
  per_cpu_percent?: number[];
  times_percent: Record<string, number>;
  /** Seconds since boot, per mode. */
  times_s: Record<string, number>;
  freq_mhz: { current: number; min: number; max: number } | null;
  count_logical: number;
  count_physical: number | null;
  stats: Record<string, number>;
  interval_s: number;
  ts: number;
  [key: string]: unknown;
}

/** psutil `virtual_memory()`, each byte field `<name>_bytes`; Linux also `active_bytes`,
 * `inactive_bytes`, `buffers_bytes`, `cached_bytes`, `shared_bytes`, `slab_bytes`. */
export interface VirtualMemory {
  total_bytes: number;
  available_bytes: number;
  percent: number;
  used_bytes: number;
  free_bytes: number;
  [key: string]: number;
}

export interface SwapMemory {
  total_bytes: number;
  used_bytes: number;
  free_bytes: number;
  percent: number;
  /** Swapped in from / out to disk since boot. */
  sin_bytes: number;
  sout_bytes: number;
  [key: string]: number;
}

/** `sys.memory`: virtual memory and swap. */
export interface SysMemory {
  virtual: VirtualMemory;
  swap: SwapMemory;
  ts: number;
  [key: string]: unknown;
}

export interface Disk {
  device: string;
  mountpoint: string;
  fstype: string;
  opts: string;
  total_bytes?: number;
  used_bytes?: number;
  free_bytes?: number;
  percent?: number;
  inodes_total?: number;
  inodes_used?: number;
  inodes_free?: number;
  inodes_percent?: number;
  /** Set when the filesystem could not be read. */
  error?: string;
  [key: string]: unknown;
}

/** `sys.disks`: mounted filesystems with usage. */
export interface SysDisks {
  disks: Disk[];
  ts: number;
  [key: string]: unknown;
}

/** Counters (`read_bytes`, `write_count`, `read_time_s`, `busy_time_s`, ...) and rates (`read_bytes_per_s`, ...). */
export type DiskIoCounters = Record<string, number>;

/** `sys.disk_io`: counters and rates, total and per disk. */
export interface SysDiskIo {
  total: DiskIoCounters;
  /** Present unless `per_disk: false`. */
  disks?: Record<string, DiskIoCounters>;
  interval_s: number;
  ts: number;
  [key: string]: unknown;
}

export interface InterfaceAddress {
  family: "ipv4" | "ipv6";
  address: string;
  netmask: string | null;
  broadcast: string | null;
  [key: string]: unknown;
}

export interface NetworkInterface {
  name: string;
  isup: boolean;
  speed_mbps: number;
  mtu_bytes: number;
  duplex: string;
  mac: string | null;
  addresses: InterfaceAddress[];
  bytes_sent?: number;
  bytes_recv?: number;
  bytes_sent_per_s?: number;
  bytes_recv_per_s?: number;
  [key: string]: unknown;
}

/** `sys.network`: interfaces, counters and rates. */
export interface SysNetwork {
  interfaces: NetworkInterface[];
  total: Record<string, number>;
  interval_s: number;
  ts: number;
  [key: string]: unknown;
}

/** `sys.load`: load averages. */
export interface SysLoad {
  load1: number;
  load5: number;
  load15: number;
  per_cpu: { load1: number; load5: number; load15: number };
  cpu_count: number;
  ts: number;
  [key: string]: unknown;
}

/** One row of `sys.processes`. */
export interface ProcessRow {
  pid: number;
  ppid: number | null;
  name: string;
  username: string | null;
  status: string | null;
  cpu_percent: number;
  memory_percent: number;
  memory_rss_bytes: number | null;
  memory_vms_bytes: number | null;
  num_threads: number | null;
  /** Epoch seconds. */
  created_at: number | null;
  cmdline: string[];
  [key: string]: unknown;
}

/** `sys.processes`: processes sorted and filtered. */
export interface SysProcesses {
  processes: ProcessRow[];
  /** Matching processes before `limit`. */
  total: number;
  truncated: boolean;
  ts: number;
  [key: string]: unknown;
}

/** `sys.process`: one process in detail (fields the OS refuses are null). */
export interface SysProcess extends ProcessRow {
  exe?: string | null;
  cwd?: string | null;
  terminal?: string | null;
  nice?: number | null;
  /** Seconds per mode (`user`, `system`, `children_user`, ...). */
  cpu_times_s?: Record<string, number> | null;
  /** `rss_bytes`, `vms_bytes`, ... */
  memory_info?: Record<string, number> | null;
  num_fds?: number | null;
  io_counters?: Record<string, number> | null;
  num_ctx_switches?: Record<string, number> | null;
  children?: number[];
  open_files_count?: number | null;
}

/** `sys.sensors`: temperatures, fans and battery (empty where absent). */
export interface SysSensors {
  temperatures: {
    chip: string;
    label: string;
    current_celsius: number;
    high_celsius: number | null;
    critical_celsius: number | null;
  }[];
  fans: { chip: string; label: string; current_rpm: number }[];
  battery: { percent: number; time_left_s: number | null; power_plugged: boolean | null } | null;
  [key: string]: unknown;
}

/** `sys.users`: logged-in users. */
export interface SysUsers {
  users: { name: string; terminal: string | null; host: string | null; started_at: number; pid: number | null }[];
  [key: string]: unknown;
}

export interface ListeningPort {
  proto: "tcp" | "udp";
  family: "ipv4" | "ipv6" | "unix";
  address: string;
  port: number | null;
  pid: number | null;
  process: string | null;
  [key: string]: unknown;
}

/** `sys.ports`: listening sockets. */
export interface SysPorts {
  ports: ListeningPort[];
  [key: string]: unknown;
}

/** `sys.kill`: the signal was sent. */
export interface SysKill {
  pid: number;
  signal: string;
  sent: boolean;
  [key: string]: unknown;
}

// ----------------------------------------------------------------------------- fs
// Sizes in bytes, `mode` is the permission bits as an int (0o644 = 420), times epoch s.

/**
 * A path or file name as the daemon sends it: a string, or the raw bytes (msgpack bin) when
 * the name is not valid UTF-8 (legal on Linux). Pass either back as a path parameter; decode
 * for display with `new TextDecoder().decode(p)` (lossy) or keep the bytes.
 */
export type FsPath = string | Uint8Array;

export type EntryType = "file" | "dir" | "symlink" | "fifo" | "socket" | "char_device" | "block_device" | "other";

/** `fs.stat`: one entry's metadata (of a symlink itself, with its target). */
export interface FileInfo {
  path: FsPath;
  name: FsPath;
  type: EntryType;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  inode: number;
  mtime_at: number;
  atime_at: number;
  ctime_at: number;
  symlink_target: FsPath | null;
  [key: string]: unknown;
}

/** `fs.exists`. */
export interface Existence {
  path: FsPath;
  exists: boolean;
  type: EntryType | null;
  [key: string]: unknown;
}

/** One row of `fs.list` / `fs.find` (`name` relative to the listed directory). */
export interface Entry {
  name: FsPath;
  path: FsPath;
  type: EntryType;
  size: number;
  mode: number;
  mtime_at: number;
  symlink_target: FsPath | null;
  [key: string]: unknown;
}

/** `fs.list`, `fs.find`. */
export interface Listing {
  path: FsPath;
  entries: Entry[];
  truncated: boolean;
  scanned: number;
  [key: string]: unknown;
}

/** `fs.read`: `data` is bytes (Uint8Array), or a string when an `encoding` was given. */
export interface FileContent {
  path: FsPath;
  data: Uint8Array | string;
  offset: number;
  length: number;
  size: number;
  eof: boolean;
  [key: string]: unknown;
}

/** `fs.write`. */
export interface Written {
  path: FsPath;
  mode: string;
  written_bytes: number;
  size: number;
  created: boolean;
  /** Of the new content (create and overwrite); null after an append. */
  sha256: string | null;
  [key: string]: unknown;
}

/** `fs.mkdir`. */
export interface Mkdir {
  path: FsPath;
  created: boolean;
  [key: string]: unknown;
}

/** `fs.remove`. */
export interface Removed {
  path: FsPath;
  removed: boolean;
  files: number;
  dirs: number;
  [key: string]: unknown;
}

/** `fs.copy`, `fs.move`. */
export interface Transfer {
  src: FsPath;
  dst: FsPath;
  files: number;
  dirs: number;
  symlinks: number;
  copied_bytes: number;
  skipped: number;
  renamed: boolean;
  [key: string]: unknown;
}

/** `fs.hash`. */
export interface Hash {
  path: FsPath;
  algorithm: string;
  /** Hex. */
  digest: string;
  size: number;
  [key: string]: unknown;
}

/** `fs.du`. */
export interface DiskUsage {
  path: FsPath;
  size: number;
  disk_bytes: number;
  files: number;
  dirs: number;
  symlinks: number;
  others: number;
  errors: number;
  [key: string]: unknown;
}

/** `fs.tail`. */
export interface Tail {
  path: FsPath;
  lines: string[];
  size: number;
  [key: string]: unknown;
}

/** `fs.chmod`. */
export interface Chmod {
  path: FsPath;
  mode: number;
  [key: string]: unknown;
}

// -------------------------------------------------------------------------- watch

/** `watch.add`. */
export interface WatchStarted {
  subscription: string;
  paths: FsPath[];
  [key: string]: unknown;
}

/** `watch.remove`. */
export interface WatchRemoved {
  subscription: string;
  removed: boolean;
  [key: string]: unknown;
}

/** `watch.list`. */
export interface WatchList {
  subscriptions: {
    subscription: string;
    paths: FsPath[];
    recursive: boolean;
    own: boolean;
    delivered: number;
    overflows: number;
    [key: string]: unknown;
  }[];
  watches: { path: FsPath; recursive: boolean; subscriptions: number; [key: string]: unknown }[];
  [key: string]: unknown;
}

// ------------------------------------------------------------------------ monitor

/** An alert (monitor.alert notifications, monitor.history, monitor.test). */
export interface Alert {
  id: string;
  fingerprint: string;
  check: string;
  component: string;
  severity: "warning" | "critical";
  status: "firing" | "resolved";
  value: number;
  unit: string;
  value_text: string;
  threshold: number | null;
  started_at: number;
  ended_at: number | null;
  created_at: number;
  repeat: boolean;
  test: boolean;
  title: string;
  message: string;
  host: { hostname: string; addresses: string[]; load: number[]; uptime_s: number; [key: string]: unknown };
  [key: string]: unknown;
}

/** `monitor.status`. */
export interface MonitorStatus {
  enabled: boolean;
  running: boolean;
  /** Seconds between evaluation ticks. */
  refresh_s: number;
  /** Seconds between re-sends of a still-firing alert (negative: once per incident). */
  repeat_interval_s: number;
  ticks: number;
  skipped_ticks: number;
  last_tick_at: number | null;
  last_tick_ms: number | null;
  last_collect_ms: number | null;
  /** Collectors that failed on the last tick: collector name -> message. */
  errors: Record<string, string>;
  firing: number;
  checks: {
    check: string;
    component: string;
    /** The firing level. */
    state: "ok" | "warning" | "critical";
    /** A higher level waiting out `duration_s`, if any. */
    pending: "warning" | "critical" | null;
    value: number | null;
    unit: string;
    threshold: number | null;
    warning: number | null;
    critical: number | null;
    duration_s: number;
    /** When the state began (epoch s). */
    changed_at: number;
    started_at: number | null;
    last_sent_at: number | null;
    updated_at: number;
    silenced: boolean;
    [key: string]: unknown;
  }[];
  silences: Silence[];
  providers: string[];
  provider_status: {
    name: string;
    /** The provider's circuit breaker. */
    state: "closed" | "open" | "half_open";
    queued: number;
    queued_bytes: number;
    in_flight: number;
    consecutive_failures: number;
    delivered_total: number;
    failed_total: number;
    dropped_total: number;
    next_attempt_at: number | null;
    last_error: string | null;
    [key: string]: unknown;
  }[];
  subscribers: number;
  queue: {
    depth: number;
    in_flight: number;
    capacity: number;
    capacity_bytes: number;
    workers: number;
    dropped: number;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

/** `monitor.checks`: unit, thresholds, `duration_s`, `hysteresis` and the components seen
 * are present when the check is enabled. */
export interface MonitorChecks {
  checks: {
    check: string;
    enabled: boolean;
    unit?: string;
    warning?: number | null;
    critical?: number | null;
    duration_s?: number;
    hysteresis?: number;
    components?: string[];
    [key: string]: unknown;
  }[];
  [key: string]: unknown;
}

/** `monitor.history`. */
export interface MonitorHistory {
  alerts: (Alert & { deliveries: { provider: string; status: string; attempts: number; [key: string]: unknown }[] })[];
  size: number;
  capacity: number;
  [key: string]: unknown;
}

export interface Silence {
  id: string;
  check: string | null;
  component: string | null;
  starts_at: number;
  ends_at: number;
  comment: string;
  created_by: string | null;
  [key: string]: unknown;
}

/** `monitor.silence`: the new silence. */
export type SilenceCreated = Silence;

/** `monitor.silences`. */
export interface Silences {
  silences: Silence[];
  [key: string]: unknown;
}

/** `monitor.unsilence`. */
export interface Unsilenced {
  removed: string[];
  [key: string]: unknown;
}

/** `monitor.test`. */
export interface MonitorTest {
  alert: Alert;
  results: { provider: string; ok: boolean; error: string | null; status_code: number | null; duration_ms: number; [key: string]: unknown }[];
  [key: string]: unknown;
}

/** `monitor.unsubscribe`. */
export interface MonitorUnsubscribed {
  subscription: string;
  closed: boolean;
  [key: string]: unknown;
}

/** Result shapes by method name. */
export interface KnownResults {
  "rpc.hello": Hello;
  "rpc.ping": Pong;
  "rpc.methods": MethodList;
  "sys.info": SysInfo;
  "sys.cpu": SysCpu;
  "sys.memory": SysMemory;
  "sys.disks": SysDisks;
  "sys.disk_io": SysDiskIo;
  "sys.network": SysNetwork;
  "sys.load": SysLoad;
  "sys.processes": SysProcesses;
  "sys.process": SysProcess;
  "sys.sensors": SysSensors;
  "sys.users": SysUsers;
  "sys.ports": SysPorts;
  "sys.kill": SysKill;
  "fs.stat": FileInfo;
  "fs.exists": Existence;
  "fs.list": Listing;
  "fs.find": Listing;
  "fs.read": FileContent;
  "fs.write": Written;
  "fs.mkdir": Mkdir;
  "fs.remove": Removed;
  "fs.copy": Transfer;
  "fs.move": Transfer;
  "fs.hash": Hash;
  "fs.du": DiskUsage;
  "fs.tail": Tail;
  "fs.chmod": Chmod;
  "watch.add": WatchStarted;
  "watch.remove": WatchRemoved;
  "watch.list": WatchList;
  "monitor.status": MonitorStatus;
  "monitor.checks": MonitorChecks;
  "monitor.history": MonitorHistory;
  "monitor.silence": SilenceCreated;
  "monitor.silences": Silences;
  "monitor.unsilence": Unsilenced;
  "monitor.test": MonitorTest;
  "monitor.unsubscribe": MonitorUnsubscribed;
}

/** The result of method `M`. */
export type ResultOf<M extends string> = M extends keyof KnownResults ? KnownResults[M] : AnyResult;
