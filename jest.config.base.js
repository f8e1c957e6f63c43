/** Shared jest settings: TypeScript through ts-jest, type-checked by `tsc` in build. */
module.exports = {
  testEnvironment: require.resolve("./jest.environment.js"),
  roots: ["<rootDir>/test"],
  transform: { "^.+\\.ts$": ["ts-jest", { diagnostics: false, tsconfig: { isolatedModules: true } }] },
  moduleFileExtensions: ["ts", "js", "json"],
  testTimeout: 120000,
};
