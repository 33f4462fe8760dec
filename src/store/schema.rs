//! Versioned schema migrations. Migration `i` (1-based) brings a database from version `i - 1`
//! to version `i`. Never edit a released migration: append a new one.

pub const MIGRATIONS: &[&str] = &[
    // ---- v1: the foundation ----
    r#"
CREATE TABLE raw_files (
    id          INTEGER PRIMARY KEY,
    path        TEXT NOT NULL UNIQUE,          -- data-relative (raw/show.flac) or as given
    duration    REAL,
    sample_rate INTEGER,
    channels    INTEGER,
    added_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);

CREATE TABLE segments (
    id            INTEGER PRIMARY KEY,
    segment_path  TEXT NOT NULL UNIQUE,        -- data-relative, e.g. segments/x_s0001.wav
    raw_file      TEXT NOT NULL DEFAULT '',    -- as written in the manifest (bare name in DAMS)
    start_time    REAL NOT NULL DEFAULT 0,
    end_time      REAL NOT NULL DEFAULT 0,
    duration      REAL GENERATED ALWAYS AS (end_time - start_time) VIRTUAL,
    split         TEXT NOT NULL DEFAULT 'unsplit'
                  CHECK (split IN ('train','dev','test','unlabeled','unsplit')),
    -- The manifest's own label columns, as imported (the base layer under gold and pseudo-labels).
    label_source  TEXT NOT NULL DEFAULT 'none',
    speech_label  INTEGER CHECK (speech_label IN (0,1)),
    music_label   INTEGER CHECK (music_label IN (0,1)),
    noise_label   INTEGER CHECK (noise_label IN (0,1)),
    speech_score  REAL,
    music_score   REAL,
    noise_score   REAL,
    extra         TEXT,                        -- JSON object of extra manifest columns
    needs_review  INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE INDEX segments_split ON segments(split);
CREATE INDEX segments_raw ON segments(raw_file, start_time);

CREATE TABLE acoustic_stats (
    segment_id          INTEGER PRIMARY KEY REFERENCES segments(id) ON DELETE CASCADE,
    duration_sec        REAL,
    rms_db              REAL,
    silence_ratio       REAL,
    clipping_ratio      REAL,
    zero_crossing_rate  REAL,
    snr_db              REAL,
    energy_variance     REAL,
    is_too_short        INTEGER NOT NULL DEFAULT 0,
    is_too_quiet        INTEGER NOT NULL DEFAULT 0,
    is_mostly_silence   INTEGER NOT NULL DEFAULT 0,
    is_heavily_clipped  INTEGER NOT NULL DEFAULT 0,
    is_high_zcr         INTEGER NOT NULL DEFAULT 0,
    had_error           INTEGER NOT NULL DEFAULT 0,
    error               TEXT,
    computed_at         TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);

CREATE TABLE annotators (
    id    INTEGER PRIMARY KEY,
    name  TEXT NOT NULL UNIQUE
);

-- Current gold label per (segment, annotator).
CREATE TABLE gold_labels (
    segment_id    INTEGER NOT NULL REFERENCES segments(id) ON DELETE CASCADE,
    annotator_id  INTEGER NOT NULL REFERENCES annotators(id),
    speech        INTEGER NOT NULL CHECK (speech IN (0,1)),
    music         INTEGER NOT NULL CHECK (music IN (0,1)),
    noise         INTEGER NOT NULL CHECK (noise IN (0,1)),
    updated_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    PRIMARY KEY (segment_id, annotator_id)
);
CREATE INDEX gold_by_annotator ON gold_labels(annotator_id);

-- Every change of a gold label or review flag; `before_*`/`after_*` NULL = no label.
-- state: 'done' (applied), 'undone' (can be redone), 'dropped' (a newer change cleared the redo stack).
CREATE TABLE label_history (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    segment_id    INTEGER NOT NULL REFERENCES segments(id) ON DELETE CASCADE,
    annotator_id  INTEGER NOT NULL REFERENCES annotators(id),
    before_bits   INTEGER,
    after_bits    INTEGER,
    before_review INTEGER NOT NULL DEFAULT 0,
    after_review  INTEGER NOT NULL DEFAULT 0,
    state         TEXT NOT NULL DEFAULT 'done' CHECK (state IN ('done','undone','dropped')),
    at            TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE INDEX history_by_annotator ON label_history(annotator_id, state, id);

-- "needs review" per (segment, annotator).
CREATE TABLE review_flags (
    segment_id    INTEGER NOT NULL REFERENCES segments(id) ON DELETE CASCADE,
    annotator_id  INTEGER NOT NULL REFERENCES annotators(id),
    PRIMARY KEY (segment_id, annotator_id)
);

CREATE TABLE notes (
    segment_id    INTEGER NOT NULL REFERENCES segments(id) ON DELETE CASCADE,
    annotator_id  INTEGER NOT NULL REFERENCES annotators(id),
    text          TEXT NOT NULL,
    updated_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    PRIMARY KEY (segment_id, annotator_id)
);

-- A teacher run: teacher id + model checksum + settings + time. Students are teachers too
-- (teacher = 'student:<name>'); imported score CSVs are runs with kind = 'imported'.
CREATE TABLE teacher_runs (
    id          INTEGER PRIMARY KEY,
    teacher     TEXT NOT NULL,
    checksum    TEXT NOT NULL DEFAULT '',
    settings    TEXT NOT NULL DEFAULT '{}',     -- JSON (pooling, device, batch size, source file...)
    kind        TEXT NOT NULL DEFAULT 'computed' CHECK (kind IN ('computed','imported')),
    zero_shot   INTEGER NOT NULL DEFAULT 0,
    state       TEXT NOT NULL DEFAULT 'running' CHECK (state IN ('running','done','interrupted','cancelled','failed')),
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    finished_at TEXT
);
CREATE INDEX runs_by_teacher ON teacher_runs(teacher, id);

CREATE TABLE teacher_scores (
    run_id        INTEGER NOT NULL REFERENCES teacher_runs(id) ON DELETE CASCADE,
    segment_id    INTEGER NOT NULL REFERENCES segments(id) ON DELETE CASCADE,
    speech        REAL NOT NULL,
    music         REAL NOT NULL,
    noise         REAL NOT NULL,
    logits        BLOB,                         -- optional f32 little-endian vector (527 for AudioSet taggers)
    PRIMARY KEY (run_id, segment_id)
) WITHOUT ROWID;
CREATE INDEX scores_by_segment ON teacher_scores(segment_id);

-- Per-class thresholds with provenance. The newest row per (teacher, class) is the active one.
CREATE TABLE thresholds (
    id          INTEGER PRIMARY KEY,
    teacher     TEXT NOT NULL,
    class       TEXT NOT NULL CHECK (class IN ('speech','music','noise')),
    value       REAL,                            -- NULL: calibration could not reach its target
    method      TEXT NOT NULL,                   -- manual | target_precision | quantile | f1_optimal | default | copied
    target      REAL,
    run_id      INTEGER REFERENCES teacher_runs(id) ON DELETE SET NULL,
    gold_n      INTEGER,
    source      TEXT,                            -- e.g. the teacher whose thresholds were reused
    created_by  TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    note        TEXT
);
CREATE INDEX thresholds_by_teacher ON thresholds(teacher, class, id);

-- A pseudo-labelling run and the snapshot of everything it used.
CREATE TABLE pseudo_runs (
    id            INTEGER PRIMARY KEY,
    label_source  TEXT NOT NULL,
    config        TEXT NOT NULL DEFAULT '{}',    -- JSON snapshot: runs, thresholds, rule, k
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);

CREATE TABLE pseudo_labels (
    pseudo_run_id INTEGER NOT NULL REFERENCES pseudo_runs(id) ON DELETE CASCADE,
    segment_id    INTEGER NOT NULL REFERENCES segments(id) ON DELETE CASCADE,
    speech        INTEGER NOT NULL,
    music         INTEGER NOT NULL,
    noise         INTEGER NOT NULL,
    speech_score  REAL,
    music_score   REAL,
    noise_score   REAL,
    PRIMARY KEY (pseudo_run_id, segment_id)
) WITHOUT ROWID;

CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,
    params      TEXT NOT NULL DEFAULT '{}',
    state       TEXT NOT NULL DEFAULT 'queued'
                CHECK (state IN ('queued','running','done','failed','cancelled','interrupted')),
    pid         INTEGER,
    done        INTEGER NOT NULL DEFAULT 0,
    total       INTEGER,
    phase       TEXT,
    metrics     TEXT,
    result      TEXT,
    error       TEXT,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    started_at  TEXT,
    finished_at TEXT
);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"#,
    // ---- v2: job log lines and the device a run used ----
    r#"
ALTER TABLE jobs ADD COLUMN log TEXT NOT NULL DEFAULT '';
ALTER TABLE teacher_runs ADD COLUMN device TEXT;
"#,
    // ---- v3: the ast-head student's cache of pooled AST embeddings (see store/embeddings.rs) ----
    r#"
CREATE TABLE ast_embeddings (
    checksum   TEXT NOT NULL,                  -- the AST weights (sha256:...)
    segment_id INTEGER NOT NULL REFERENCES segments(id) ON DELETE CASCADE,
    dim        INTEGER NOT NULL,
    vec        BLOB NOT NULL,                  -- dim little-endian f32
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    PRIMARY KEY (checksum, segment_id)
) WITHOUT ROWID;
"#,
    // ---- v4: raw outputs tagged by vocabulary, one embedding cache for every model, thresholds scoped to the
    //      scoring settings they were set for (see teachers/raw.rs, store/runs.rs, store/embeddings.rs) ----
    r#"
ALTER TABLE teacher_runs ADD COLUMN raw_vocab TEXT;            -- vocabulary of teacher_scores.logits (raw outputs)
UPDATE teacher_runs SET raw_vocab = 'audioset-527'
 WHERE id IN (SELECT DISTINCT run_id FROM teacher_scores WHERE logits IS NOT NULL)
    OR json_extract(settings, '$.remapped_from') IS NOT NULL;
ALTER TABLE thresholds ADD COLUMN scope TEXT;                  -- scoring key of the runs they apply to (NULL: legacy)
CREATE TABLE embeddings (
    model_checksum TEXT NOT NULL,                              -- the model's weights (sha256:...)
    kind           TEXT NOT NULL,                              -- what vector: 'ast-pooled', 'clap-audio'...
    segment_id     INTEGER NOT NULL REFERENCES segments(id) ON DELETE CASCADE,
    dim            INTEGER NOT NULL,
    vec            BLOB NOT NULL,                              -- dim little-endian f32
    created_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    PRIMARY KEY (model_checksum, kind, segment_id)
) WITHOUT ROWID;
INSERT INTO embeddings (model_checksum, kind, segment_id, dim, vec, created_at)
    SELECT checksum, 'ast-pooled', segment_id, dim, vec, created_at FROM ast_embeddings;
DROP TABLE ast_embeddings;
"#,
];

pub const LATEST_VERSION: i64 = MIGRATIONS.len() as i64;
