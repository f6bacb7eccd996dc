// Preloaded by PM2 (PM2_NODE_OPTIONS="--require <this>") into its daemon and its apps; acts
// in the daemon alone (its title, set at its start): its exit hangs for a minute once `pm2
// kill` has told it to go, without using CPU, as a daemon slow to exit on a loaded machine
// (CI) does for a moment. The local box's exit must still mean that nothing it started is
// left (tools/test/local-box-leftovers.test.ts).
process.on("exit", () => {
  if (process.title.includes("God Daemon"))
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60_000);
});
