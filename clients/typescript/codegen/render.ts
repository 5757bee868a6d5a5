/**
 * Render src/generated.ts from the daemon's `rpc.methods` answer. A pure function of that
 * answer, so a test can re-render against a running daemon and compare with the checked-in
 * file (drift check).
 *
 * Results: a method whose entry has a `result` schema (the daemon's router derives it from
 * the handler's return annotation: see `ResultSchema` in src/results.ts) gets its result
 * type from it. A map with `fields` becomes `export interface <title>` (without a title:
 * `<Method>Result` for the result itself, `<Parent><Field>` below it, `...Item` for list
 * elements, `...Value` for map values), a field with `required: false` is optional, `str|bin`
 * (a file name) is `FsPath`, `choices` are literal unions and `nullable` adds `| null`.
 * Without a schema the result is a generic map (`SubscriptionStarted` for a subscription).
 */
import type { MethodInfo, MethodParamInfo, ResultSchema } from "../src/results.js";

/** Client members a namespace must not shadow. */
const RESERVED_NAMESPACES = new Set([
  "call", "subscribe", "connect", "close", "state", "connected", "socketPath", "maxFrame", "inflightCount",
  "on", "once", "off", "emit", "addListener", "removeListener", "removeAllListeners", "listeners", "rawListeners",
  "listenerCount", "eventNames", "prependListener", "prependOnceListener", "setMaxListeners", "getMaxListeners",
  "constructor", "prototype", "__proto__",
]);

/** Names of unsubscribe methods, best first, for a namespace whose method streams. */
const UNSUBSCRIBE_NAMES = ["unsubscribe", "remove", "cancel", "stop", "close"];

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

const RESERVED_WORDS = new Set(
  ("break case catch class const continue debugger default delete do else enum export extends false finally for " +
    "function if import in instanceof new null return super switch this throw true try typeof var void while with " +
    "yield let static implements interface package private protected public await arguments eval first second third " +
    "params options").split(" "),
);

function argName(name: string): string {
  const c = camel(name);
  return IDENT.test(c) && !RESERVED_WORDS.has(c) ? c : "value";
}

function pascal(s: string): string {
  return s
    .split(/[._\-\s]+/)
    .filter(Boolean)
    .map((w) => w[0]!.toUpperCase() + w.slice(1))
    .join("");
}

function camel(s: string): string {
  const p = pascal(s);
  return p.length === 0 ? p : p[0]!.toLowerCase() + p.slice(1);
}

function propName(name: string): string {
  return IDENT.test(name) ? name : JSON.stringify(name);
}

/** Split `a|list[b|c]|d` at top-level bars. */
function splitUnion(t: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = "";
  for (const ch of t) {
    if (ch === "[") depth += 1;
    if (ch === "]") depth -= 1;
    if (ch === "|" && depth === 0) {
      out.push(cur.trim());
      cur = "";
    } else {
      cur += ch;
    }
  }
  out.push(cur.trim());
  return out.filter((m) => m.length > 0);
}

/** TypeScript type of one wire type name (see the daemon's router: ParamSpec.type). */
export function tsType(wire: string): string {
  const members = splitUnion(wire);
  if (members.length > 1) return [...new Set(members.map(tsType))].join(" | ");
  const t = members[0] ?? "any";
  const list = /^list\[(.*)\]$/.exec(t);
  if (list) {
    const inner = tsType(list[1] ?? "any");
    return /[ |]/.test(inner) ? `Array<${inner}>` : `${inner}[]`;
  }
  switch (t) {
    case "int":
    case "float":
      return "number";
    case "str":
      return "string";
    case "bool":
      return "boolean";
    case "bin":
      return "Uint8Array";
    case "map":
      return "Record<string, unknown>";
    case "nil":
    case "none":
    case "None":
    case "null":
      return "null";
    default:
      return "unknown";
  }
}

function literal(v: unknown): string {
  return typeof v === "string" || typeof v === "number" || typeof v === "boolean" || v === null
    ? JSON.stringify(v)
    : "unknown";
}

/** TypeScript type of a parameter: choices become literal unions, nullable adds `| null`. */
export function paramType(p: MethodParamInfo): string {
  const parts: string[] = [];
  const members = splitUnion(p.type);
  if (Array.isArray(p.choices) && p.choices.length > 0) {
    parts.push(...p.choices.map(literal));
    const kinds = new Set(p.choices.map((c) => typeof c));
    for (const m of members) {
      if ((m === "str" && kinds.has("string")) || ((m === "int" || m === "float") && kinds.has("number"))) continue;
      if (m === "any") continue;
      parts.push(tsType(m));
    }
  } else {
    parts.push(tsType(p.type));
  }
  if (p.nullable === true) parts.push("null");
  return [...new Set(parts)].join(" | ");
}

function docLines(lines: string[], indent: string): string {
  const body = lines.flatMap((l) => l.split("\n")).map((l) => l.replace(/\*\//g, "*\\/").trimEnd());
  while (body.length > 0 && body[body.length - 1] === "") body.pop();
  if (body.length === 0) return "";
  if (body.length === 1) return `${indent}/** ${body[0]} */\n`;
  return `${indent}/**\n${body.map((l) => (l ? `${indent} * ${l}` : `${indent} *`)).join("\n")}\n${indent} */\n`;
}

function paramDoc(p: MethodParamInfo): string[] {
  const bits: string[] = [];
  if (p.summary) bits.push(p.summary);
  const extra: string[] = [];
  if (!p.required && p.default !== undefined) extra.push(`default ${JSON.stringify(p.default)}`);
  if (typeof p.min === "number" || typeof p.max === "number") {
    extra.push(`range ${p.min ?? ""}..${p.max ?? ""}`);
  }
  extra.push(`wire type \`${p.type}\``);
  bits.push(`(${extra.join(", ")})`);
  return [bits.join(" ")];
}

interface Plan {
  info: MethodInfo;
  ns: string;
  member: string;
  typeBase: string;
  /** The one required parameter that may be passed positionally. */
  positional: MethodParamInfo | null;
  unsubscribe: string | null;
}

function positionalParam(info: MethodInfo): MethodParamInfo | null {
  const required = info.params.filter((p) => p.required);
  if (required.length !== 1) return null;
  const p = required[0]!;
  const members = splitUnion(p.type);
  if (members.includes("map") || members.includes("any")) return null;
  return p;
}

function unsubscribeFor(info: MethodInfo, all: MethodInfo[]): string {
  const ns = info.name.slice(0, info.name.indexOf("."));
  const candidates = all.filter(
    (m) =>
      m.name.startsWith(`${ns}.`) &&
      !m.streams &&
      m.params.some((p) => p.name === "subscription" && p.required) &&
      m.params.filter((p) => p.required).length === 1,
  );
  const rank = (m: MethodInfo): number => {
    const i = UNSUBSCRIBE_NAMES.indexOf(m.name.slice(ns.length + 1));
    return i < 0 ? UNSUBSCRIBE_NAMES.length : i;
  };
  candidates.sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name));
  return candidates[0]?.name ?? `${ns}.unsubscribe`;
}

function plan(methods: MethodInfo[]): Plan[] {
  const sorted = [...methods].sort((a, b) => a.name.localeCompare(b.name));
  return sorted.map((info) => {
    const dot = info.name.indexOf(".");
    if (dot <= 0) throw new Error(`method name without a namespace: ${info.name}`);
    const ns = info.name.slice(0, dot);
    if (RESERVED_NAMESPACES.has(camel(ns))) throw new Error(`namespace ${ns} would shadow a client member`);
    return {
      info,
      ns,
      member: camel(info.name.slice(dot + 1)),
      typeBase: pascal(info.name),
      positional: positionalParam(info),
      unsubscribe: info.streams ? unsubscribeFor(info, sorted) : null,
    };
  });
}

function renderParams(p: Plan): string {
  const name = `${p.typeBase}Params`;
  const doc = docLines([`Parameters of \`${p.info.name}\`.`], "");
  if (p.info.params.length === 0) return `${doc}export type ${name} = Record<string, never>;\n`;
  const fields = p.info.params
    .map((q) => `${docLines(paramDoc(q), "  ")}  ${propName(q.name)}${q.required ? "" : "?"}: ${paramType(q)};\n`)
    .join("");
  return `${doc}export interface ${name} {\n${fields}}\n`;
}

/** Names generated.ts defines or imports itself: a result interface may not take them. */
const RESERVED_TYPES = new Set([
  "METHOD_NAMES", "MethodName", "STREAMS", "MethodMap", "XsysNamespaces", "createNamespaces", "CallOptions", "Caller",
  "positional", "SubscribeOptions", "NotificationOf", "SubscriptionStarted", "Subscription", "FsPath", "AnyResult",
  "ResultOf", "KnownResults", "Record", "Array", "Promise", "Omit",
]);

/** Docstring text for TSDoc: RST ``literals`` become `literals`. */
function tsDoc(text: string): string[] {
  return text.replace(/``([^`]+)``/g, "`$1`").split("\n");
}

/** The TypeScript type of one result scalar wire type (`str|bin`, a file name, is `FsPath`). */
function resultScalar(wire: string): string {
  if (wire.replace(/\s/g, "") === "str|bin") return "FsPath";
  return tsType(wire);
}

function arrayOf(inner: string): string {
  return /[ |&]/.test(inner) ? `Array<${inner}>` : `${inner}[]`;
}

/** The result interfaces (by name, in the order first met) of a set of schemas. */
class ResultTypes {
  readonly texts = new Map<string, string>();
  /** Names a title may not take (the generated file's own names). */
  constructor(private readonly taken: Set<string>) {}

  typeOf(s: ResultSchema, hint: string): string {
    let base: string;
    if (Array.isArray(s.fields)) base = this.iface(s, s.title ?? hint);
    else if (s.items) base = arrayOf(this.typeOf(s.items, `${hint}Item`));
    else if (s.values) base = `Record<string, ${this.typeOf(s.values, `${hint}Value`)}>`;
    else base = resultScalar(s.type);
    if (Array.isArray(s.choices) && s.choices.length > 0) {
      const kinds = new Set(s.choices.map((c) => typeof c));
      const parts = s.choices.map(literal);
      if (!s.fields && !s.items && !s.values) {
        for (const m of splitUnion(s.type)) {
          if ((m === "str" && kinds.has("string")) || ((m === "int" || m === "float") && kinds.has("number"))) continue;
          if (m === "any") continue;
          parts.push(resultScalar(m));
        }
      }
      base = [...new Set(parts)].join(" | ");
    }
    if (s.nullable === true && base !== "unknown") base = `${base} | null`;
    return base;
  }

  private iface(s: ResultSchema, name: string): string {
    if (!/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name) || this.taken.has(name) || RESERVED_TYPES.has(name)) {
      throw new Error(`result type name ${JSON.stringify(name)} is not free in generated.ts`);
    }
    const fields = (s.fields ?? []).map((f) => {
      const type = this.typeOf(f, name + pascal(f.name));
      const doc = !Array.isArray(f.fields) && f.summary ? docLines(tsDoc(f.summary), "  ") : "";
      return `${doc}  ${propName(f.name)}${f.required === false ? "?" : ""}: ${type};\n`;
    });
    const doc = docLines(s.summary ? tsDoc(s.summary) : [`The \`${name}\` structure.`], "");
    const text = fields.length === 0
      ? `${doc}export type ${name} = Record<string, never>;\n`
      : `${doc}export interface ${name} {\n${fields.join("")}}\n`;
    const old = this.texts.get(name);
    if (old !== undefined && old !== text) throw new Error(`two different result structures are named ${name}`);
    if (old === undefined) this.texts.set(name, text);
    return name;
  }
}

function resultShape(p: Plan, types: ResultTypes): string {
  if (p.info.result) return types.typeOf(p.info.result, `${p.typeBase}Result`);
  return p.info.streams ? "SubscriptionStarted" : "Record<string, unknown>";
}

function renderResult(p: Plan, shape: string): string {
  const doc = docLines([`Result of \`${p.info.name}\`${p.info.streams ? " (the subscription id)" : ""}.`], "");
  if (shape === `${p.typeBase}Result`) return ""; // the interface itself has this name
  return `${doc}export type ${p.typeBase}Result = ${shape};\n`;
}

function methodDoc(p: Plan): string[] {
  // The summary only: the long description is prose that changes often, and the drift
  // test should fail on changes to methods and parameters, not on rewording.
  const lines = [p.info.summary || p.info.name];
  lines.push("", `Wire method \`${p.info.name}\`.`);
  if (p.info.streams) {
    lines.push(
      `Returns a subscription yielding \`${p.info.streams}\` notifications; ending it (break, return(), unsubscribe()) calls \`${p.unsubscribe}\`.`,
    );
  }
  if (p.info.progress) lines.push("Reports progress through `options.onProgress`.");
  return lines;
}

function renderMember(p: Plan): string {
  const P = `${p.typeBase}Params`;
  const R = `${p.typeBase}Result`;
  const doc = docLines(methodDoc(p), "  ");
  const wire = JSON.stringify(p.info.name);
  const streams = p.info.streams;
  const opts = streams ? "SubscribeOptions" : "CallOptions";
  const ret = streams ? `Subscription<NotificationOf<${JSON.stringify(streams)}>>` : `Promise<${R}>`;
  const body = (params: string, options: string): string =>
    streams
      ? `this.client.subscribe<NotificationOf<${JSON.stringify(streams)}>>(${wire}, ${JSON.stringify(p.unsubscribe)}, ${params}, ${options})`
      : `this.client.call(${wire}, ${params}, ${options}) as Promise<${R}>`;
  if (p.info.params.length === 0) {
    return `${doc}  ${p.member}(options?: ${opts}): ${ret} {\n    return ${body("undefined", "options")};\n  }\n`;
  }
  const requiredAny = p.info.params.some((q) => q.required);
  if (p.positional) {
    const q = p.positional;
    const T = paramType(q);
    const restOptional = `Omit<${P}, ${JSON.stringify(q.name)}>`;
    return (
      `${doc}  ${p.member}(${argName(q.name)}: ${T}, params?: ${restOptional}, options?: ${opts}): ${ret};\n` +
      `${doc}  ${p.member}(params: ${P}, options?: ${opts}): ${ret};\n` +
      `  ${p.member}(first: ${T} | ${P}, second?: ${restOptional} | ${opts}, third?: ${opts}): ${ret} {\n` +
      `    const [params, options] = positional<${opts}>(${JSON.stringify(q.name)}, first, second, third);\n` +
      `    return ${body("params", "options")};\n  }\n`
    );
  }
  return `${doc}  ${p.member}(params${requiredAny ? "" : "?"}: ${P}, options?: ${opts}): ${ret} {\n    return ${body("params", "options")};\n  }\n`;
}

/** The text of src/generated.ts for an `rpc.methods` answer. */
export function renderGenerated(methods: MethodInfo[]): string {
  const plans = plan(methods);
  const namespaces = [...new Set(plans.map((p) => p.ns))].sort();
  const usesPositional = plans.some((p) => p.positional && p.info.params.length > 0);
  const usesStreams = plans.some((p) => p.info.streams);
  const out: string[] = [];
  out.push(
    "// Generated by `npm run gen` (codegen/gen.ts) from the xsys daemon's rpc.methods answer.\n" +
      "// Do not edit by hand: regenerate against a running daemon. A test fails when this file\n" +
      "// drifts from the running daemon's methods.\n" +
      "/* eslint-disable */\n\n",
  );
  const callerImports = ["type CallOptions", "type Caller"];
  if (usesPositional) callerImports.push("positional");
  if (usesStreams) callerImports.push("type SubscribeOptions");
  out.push(`import { ${callerImports.sort((a, b) => a.replace("type ", "").localeCompare(b.replace("type ", ""))).join(", ")} } from "./caller.js";\n`);
  if (usesStreams) out.push('import type { NotificationOf } from "./notifications.js";\n');
  const taken = new Set<string>();
  for (const p of plans) taken.add(`${p.typeBase}Params`).add(`${p.typeBase}Result`);
  for (const ns of namespaces) taken.add(`${pascal(ns)}Api`);
  const types = new ResultTypes(taken);
  const shapes = new Map<string, string>();
  for (const p of plans) {
    if (p.info.result) taken.delete(`${p.typeBase}Result`); // it may name its own result
    shapes.set(p.info.name, resultShape(p, types));
    taken.add(`${p.typeBase}Result`);
  }
  const resultText = [...types.texts.values(), ...shapes.values()].join("\n");
  const resultImports = ["FsPath", "SubscriptionStarted"].filter((n) => new RegExp(`\\b${n}\\b`).test(resultText));
  if (resultImports.length > 0) out.push(`import type { ${resultImports.join(", ")} } from "./results.js";\n`);
  if (usesStreams) out.push('import type { Subscription } from "./subscription.js";\n');
  out.push("\n");

  out.push(`/** Every method the daemon offered when this file was generated. */\n`);
  out.push(`export const METHOD_NAMES = [\n${plans.map((p) => `  ${JSON.stringify(p.info.name)},\n`).join("")}] as const;\n\n`);
  out.push(`export type MethodName = (typeof METHOD_NAMES)[number];\n\n`);
  out.push(`/** Subscription methods: the notification each pushes and the method that ends it. */\n`);
  out.push(
    `export const STREAMS: Readonly<Record<string, { notification: string; unsubscribe: string }>> = {\n${plans
      .filter((p) => p.info.streams)
      .map((p) => `  ${JSON.stringify(p.info.name)}: { notification: ${JSON.stringify(p.info.streams)}, unsubscribe: ${JSON.stringify(p.unsubscribe)} },\n`)
      .join("")}};\n\n`,
  );

  if (types.texts.size > 0) {
    out.push("// ----------------------------------------------------------------- result types\n\n");
    for (const text of types.texts.values()) out.push(text, "\n");
    out.push("// ----------------------------------------------------------------------- methods\n\n");
  }
  for (const p of plans) {
    const result = renderResult(p, shapes.get(p.info.name) ?? "Record<string, unknown>");
    out.push(renderParams(p), "\n", ...(result ? [result, "\n"] : []));
  }

  out.push("/** Parameters and result of every method, by wire name (typed `client.call`). */\n");
  out.push(`export interface MethodMap {\n${plans.map((p) => `  ${JSON.stringify(p.info.name)}: { params: ${p.typeBase}Params; result: ${p.typeBase}Result };\n`).join("")}}\n\n`);

  for (const ns of namespaces) {
    const cls = `${pascal(ns)}Api`;
    out.push(`/** The \`${ns}.*\` methods. */\n`);
    out.push(`export class ${cls} {\n  private readonly client: Caller;\n\n  constructor(client: Caller) {\n    this.client = client;\n  }\n`);
    for (const p of plans.filter((q) => q.ns === ns)) out.push("\n", renderMember(p));
    out.push("}\n\n");
  }

  out.push("/** The typed wrappers, grouped by namespace (`client.sys.info()`). */\n");
  out.push(`export interface XsysNamespaces {\n${namespaces.map((ns) => `  readonly ${camel(ns)}: ${pascal(ns)}Api;\n`).join("")}}\n\n`);
  out.push(
    `/** Build the namespace wrappers over a caller (the client). */\nexport function createNamespaces(client: Caller): XsysNamespaces {\n  return {\n${namespaces.map((ns) => `    ${camel(ns)}: new ${pascal(ns)}Api(client),\n`).join("")}  };\n}\n`,
  );
  return out.join("");
}
