// Layer check for @farcall/core: imports point inward only (DESIGN.md), and no cycles.
// L0 errors timing | L1 call contract | L2 serialization transport registry | L3 protocol
// L4 cluster governance | L5 client server config observability | L6 application, index, extension, testing
const layers = [
  ["errors", "timing"],
  ["call", "contract"],
  ["serialization", "transport", "registry"],
  ["protocol"],
  ["cluster", "governance"],
  ["client", "server", "config", "observability"],
];
const folder = (names) => `^packages/core/src/(${names.join("|")})/`;
const forbidden = [
  { name: "no-circular", severity: "error", from: {}, to: { circular: true } },
  {
    name: "no-upward-to-entry-points",
    comment: "only the entry points may import application.ts and the entry files",
    severity: "error",
    from: { path: "^packages/core/src/[^/]+/" },
    to: { path: "^packages/core/src/[^/]+\\.ts$" },
  },
];
layers.forEach((names, level) => {
  const above = layers.slice(level + 1).flat();
  if (above.length === 0) return;
  forbidden.push({
    name: `layer-${level}-imports-inward-only`,
    comment: `${names.join(", ")} must not import ${above.join(", ")}`,
    severity: "error",
    from: { path: folder(names) },
    to: { path: folder(above) },
  });
});
module.exports = {
  forbidden,
  options: {
    doNotFollow: { path: "node_modules" },
    tsPreCompilationDeps: true,
    exclude: { path: "\\.test\\.ts$" },
  },
};
