/** Shared jest settings: TypeScript through ts-jest, type-checked by `tsc` in build. */
module.exports = {
  testEnvironment: "node",
  roots: ["<rootDir>/test"],
  transform: { "^.+\\.ts$": ["ts-jest", { isolatedModules: true, diagnostics: false }] },
  moduleFileExtensions: ["ts", "js", "json"],
  testTimeout: 120000,
};
