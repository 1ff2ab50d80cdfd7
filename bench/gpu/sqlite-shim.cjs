// For bench/gpu.sh only: the coordinator bundled to run under Deno on the GPU
// machine, which has neither Node nor npm (better-sqlite3 is a nan addon, which
// Deno cannot load). The few better-sqlite3 calls coordinator/engine/store.ts
// makes (new Database, pragma, exec, prepare().run/get/all, transaction, close),
// on Deno's built-in node:sqlite. Named parameters: better-sqlite3 takes
// { name } for @name; node:sqlite is told to accept the bare names too.
const { DatabaseSync } = require('node:sqlite');

const plain = (args) => args.map((a) => (a === undefined ? null : typeof a === 'boolean' ? Number(a) : a));
const named = (o) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, v === undefined ? null : typeof v === 'boolean' ? Number(v) : v]));
const bind = (args) => (args.length === 1 && args[0] !== null && typeof args[0] === 'object' && !ArrayBuffer.isView(args[0]) ? [named(args[0])] : plain(args));

class Statement {
  constructor(st) {
    this.st = st;
    if (st.setAllowBareNamedParameters) st.setAllowBareNamedParameters(true);
  }
  run(...args) {
    const r = this.st.run(...bind(args));
    return { changes: Number(r.changes), lastInsertRowid: r.lastInsertRowid };
  }
  get(...args) {
    return this.st.get(...bind(args));
  }
  all(...args) {
    return this.st.all(...bind(args));
  }
}

class Database {
  constructor(path) {
    this.db = new DatabaseSync(path);
  }
  pragma(p) {
    this.db.exec(`PRAGMA ${p}`);
  }
  exec(sql) {
    this.db.exec(sql);
    return this;
  }
  prepare(sql) {
    return new Statement(this.db.prepare(sql));
  }
  transaction(fn) {
    return (...args) => {
      this.db.exec('BEGIN');
      try {
        const r = fn(...args);
        this.db.exec('COMMIT');
        return r;
      } catch (e) {
        this.db.exec('ROLLBACK');
        throw e;
      }
    };
  }
  close() {
    this.db.close();
  }
}

module.exports = Database;
module.exports.default = Database;
