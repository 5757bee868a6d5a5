// Extract the README's examples so the tests can type-check and run them:
// ```ts blocks -> dist/readme-src/exampleNN.ts (compiled by tsconfig.readme.json to
// dist/readme/exampleNN.js), ```js blocks -> dist/readme/exampleNN.cjs (CommonJS).
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

/** The README's runnable blocks: [{ lang: "ts" | "js", code, line }]. */
export function readmeExamples(text) {
  const out = [];
  const re = /^```(ts|js)\n([\s\S]*?)^```$/gm;
  let m;
  while ((m = re.exec(text)) !== null) {
    out.push({ lang: m[1], code: m[2], line: text.slice(0, m.index).split("\n").length });
  }
  return out;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const examples = readmeExamples(readFileSync(join(root, "README.md"), "utf8"));
  const src = join(root, "dist", "readme-src");
  const out = join(root, "dist", "readme");
  rmSync(src, { recursive: true, force: true });
  rmSync(out, { recursive: true, force: true });
  mkdirSync(src, { recursive: true });
  mkdirSync(out, { recursive: true });
  examples.forEach((ex, i) => {
    const name = `example${String(i + 1).padStart(2, "0")}`;
    const header = `// README.md line ${ex.line}\n`;
    if (ex.lang === "ts") writeFileSync(join(src, `${name}.ts`), header + ex.code);
    else writeFileSync(join(out, `${name}.cjs`), header + ex.code);
  });
  writeFileSync(join(out, "examples.json"), JSON.stringify(examples.map((ex, i) => ({ ...ex, index: i + 1 })), null, 2));
  console.log(`readme: ${examples.length} examples extracted`);
}
