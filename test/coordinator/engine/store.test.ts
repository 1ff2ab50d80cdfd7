import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { Store } from '../../../coordinator/engine/store.ts';

describe('SQLite store', () => {
  it('adds the confusion column to an evaluations table made before it existed, keeping its rows', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-store-'));
    try {
      const path = join(dir, 'state.sqlite');
      const old = new Database(path);
      old.exec(`CREATE TABLE evaluations (job_id TEXT NOT NULL, iteration INTEGER NOT NULL, phase TEXT NOT NULL,
        test_error REAL NOT NULL, test_loss REAL NOT NULL, at INTEGER NOT NULL)`);
      old.prepare('INSERT INTO evaluations VALUES (?, ?, ?, ?, ?, ?)').run('j', 3, 'finetune', 0.25, 0.7, 1);
      old.close();
      const store = new Store(path);
      store.insertEvaluation({ job_id: 'j', iteration: 9, phase: 'finetune', test_error: 0.125, test_loss: 0.5, at: 2, confusion: '[1,0,0,1]' });
      expect(store.evaluations('j')).toEqual([
        { job_id: 'j', iteration: 3, phase: 'finetune', test_error: 0.25, test_loss: 0.7, at: 1, confusion: null },
        { job_id: 'j', iteration: 9, phase: 'finetune', test_error: 0.125, test_loss: 0.5, at: 2, confusion: '[1,0,0,1]' },
      ]);
      store.db.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
