/** Jest runs the TypeScript sources directly (ts-jest, transpile only, CommonJS output). */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/spec'],
  testMatch: ['**/*.spec.ts'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/spec/tsconfig.json', diagnostics: false }],
  },
  moduleNameMapper: {
    // ESM-only helper (import.meta) swapped for its CommonJS twin under jest.
    '^(.*)/util/package_root\\.js$': '<rootDir>/spec/support/package_root.cjs.ts',
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  // What the Node entry does on import: install the native addon (lib/backends/native_node.ts).
  setupFiles: ['<rootDir>/spec/support/quiet_banner.ts', '<rootDir>/spec/support/node_setup.ts'],
  // A watchdog thread per spec file names a test that blocks its worker for good (spec/support/hang_watchdog.ts).
  setupFilesAfterEnv: ['<rootDir>/spec/support/hang_watchdog.ts'],
  testTimeout: 120000,
  maxWorkers: 2,
};
