-- A cost database of schema version 3 (migrations 1-3), written by fleetnas at commit 641f572
-- and dumped with sqlite3's iterdump(): the upgrade test opens it with today's code.
BEGIN TRANSACTION;
CREATE TABLE devices (
        name             TEXT PRIMARY KEY,   -- the fleet name
        device_class     TEXT NOT NULL,      -- pool of interchangeable devices
        address          TEXT NOT NULL,      -- host:port, never credentials
        host_fingerprint TEXT NOT NULL,      -- same for agents on one physical host
        description      TEXT,               -- DeviceDescription as JSON
        first_seen       REAL NOT NULL,      -- unix seconds
        last_seen        REAL NOT NULL
    );
INSERT INTO "devices" VALUES('pi-1','pi4','10.0.0.5:50051','host-1','{"agent_version":"0.1.0","hostname":"h","host_fingerprint":"host-1","cpu":{"architecture":"x86_64","model":"Test CPU","physical_cores":2,"logical_cores":2},"runtime":{"onnxruntime_version":"1.20.0","available_providers":["CPUExecutionProvider"]}}',1700000000.0,1700000000.0);
CREATE TABLE lut_entries (
        lut_id          INTEGER NOT NULL REFERENCES luts (id) ON DELETE CASCADE,
        block_key       TEXT NOT NULL,
        model_sha256    TEXT NOT NULL REFERENCES models (sha256),
        latency_ms      REAL NOT NULL CHECK (latency_ms > 0),
        measurement_uid TEXT,             -- measurements.uid, here or where imported from
        PRIMARY KEY (lut_id, block_key)
    ) WITHOUT ROWID
    ;
INSERT INTO "lut_entries" VALUES(1,'conv|3','ca0df2c95aa144c1d0ff2ff3c8f967fdc1de9ef0c4120b3726416701b519d619',1.5,'2ff5618cee884dfd06c6b3a6fbab763e');
CREATE TABLE lut_reports (
        id          INTEGER PRIMARY KEY,
        lut_id      INTEGER NOT NULL REFERENCES luts (id) ON DELETE CASCADE,
        kind        TEXT NOT NULL CHECK (kind IN ('eval', 'check')),
        created_at  REAL NOT NULL,
        n           INTEGER NOT NULL,
        within_5    REAL NOT NULL,        -- shares in [0, 1]
        within_10   REAL NOT NULL,
        rmspe       REAL NOT NULL,        -- percent
        mape        REAL NOT NULL,        -- percent
        max_ape     REAL NOT NULL,        -- percent
        kendall_tau REAL,                 -- NULL when undefined (n < 2, ties)
        threshold   REAL,                 -- percent, check only
        stale       INTEGER NOT NULL,     -- 0/1, check only (0 for eval)
        calibration TEXT,                 -- JSON, the calibration used
        details     TEXT NOT NULL         -- JSON: per arch, and the check's reasons
    );
CREATE TABLE luts (
        id            INTEGER PRIMARY KEY,
        space         TEXT NOT NULL,      -- SearchSpace.identity(): name + config
        space_name    TEXT NOT NULL,
        space_config  TEXT NOT NULL,      -- JSON object, {} for the defaults
        space_version INTEGER NOT NULL,
        device        TEXT NOT NULL,      -- devices.name (kept if removed)
        settings_hash TEXT NOT NULL,
        settings      TEXT NOT NULL,      -- resolved BenchmarkSettings, JSON
        status        TEXT NOT NULL CHECK (status IN ('building', 'complete')),
        blocks_total  INTEGER NOT NULL,   -- distinct blocks of the space
        calibration   TEXT,               -- JSON: a, b, n, archs, fitted_at ...
        source        TEXT NOT NULL,      -- 'local' or the import's label
        created_at    REAL NOT NULL,
        updated_at    REAL NOT NULL,
        UNIQUE (space, device, settings_hash)
    );
INSERT INTO "luts" VALUES(1,'nb201','nb201','{}',1,'pi-1','d0c2a4670fee62be','{"graph_optimization":"GRAPH_OPTIMIZATION_ALL","input_shapes":[{"dims":["1","3","32","32"],"name":"input"}],"inter_op_threads":1,"intra_op_threads":1,"max_duration_s":10.0,"max_runs":1000,"memory_cap_bytes":"2147483648","method":"METHOD_PLAIN","min_duration_s":1.0,"min_runs":50,"providers":["CPUExecutionProvider"],"seed":"0","timeout_s":60.0,"warmup_runs":10}','building',1,NULL,'local',1.79616951824810314177e+09,1.7961695182521817684e+09);
CREATE TABLE measurements (
        id                  INTEGER PRIMARY KEY,
        uid                 TEXT NOT NULL UNIQUE,  -- dedup key, see docs/costdb.md
        device              TEXT NOT NULL,         -- devices.name (kept if removed)
        model_sha256        TEXT NOT NULL REFERENCES models (sha256),
        settings_hash       TEXT NOT NULL,
        settings            TEXT NOT NULL,         -- resolved BenchmarkSettings, JSON
        method              TEXT NOT NULL CHECK (method IN ('plain', 'paired')),
        samples_ms          TEXT NOT NULL,         -- JSON array of every sample
        median_ms           REAL NOT NULL,
        mean_ms             REAL NOT NULL,
        p90_ms              REAL NOT NULL,
        p99_ms              REAL NOT NULL,
        min_ms              REAL NOT NULL,
        max_ms              REAL NOT NULL,
        std_ms              REAL NOT NULL,
        cv                  REAL NOT NULL,
        latency_ms          REAL NOT NULL,         -- the headline figure
        paired              TEXT,                  -- PairedResult as JSON, paired only
        session_create_ms   REAL NOT NULL,
        first_run_ms        REAL NOT NULL,
        peak_rss_bytes      INTEGER NOT NULL,
        provider            TEXT NOT NULL,
        warnings            TEXT NOT NULL,         -- JSON array of strings
        agent_version       TEXT NOT NULL,
        onnxruntime_version TEXT NOT NULL,
        host_fingerprint    TEXT NOT NULL,
        intra_op_threads    INTEGER NOT NULL,
        inter_op_threads    INTEGER NOT NULL,
        freq_before_mhz     REAL,
        freq_after_mhz      REAL,
        temp_before_c       REAL,
        temp_after_c        REAL,
        load_before         REAL NOT NULL,
        load_after          REAL NOT NULL,
        throttled_before    INTEGER NOT NULL,
        throttled_after     INTEGER NOT NULL,
        wall_s              REAL NOT NULL,
        started_at          REAL NOT NULL,         -- unix seconds
        recorded_at         REAL NOT NULL,         -- when first stored anywhere
        source              TEXT NOT NULL          -- 'local' or the import's label
    );
INSERT INTO "measurements" VALUES(1,'2ff5618cee884dfd06c6b3a6fbab763e','pi-1','ca0df2c95aa144c1d0ff2ff3c8f967fdc1de9ef0c4120b3726416701b519d619','d0c2a4670fee62be','{"warmup_runs":10,"min_runs":50,"min_duration_s":1.0,"max_runs":1000,"max_duration_s":10.0,"intra_op_threads":1,"inter_op_threads":1,"providers":["CPUExecutionProvider"],"graph_optimization":"GRAPH_OPTIMIZATION_ALL","input_shapes":[{"name":"input","dims":["1","3","32","32"]}],"seed":"0","method":"METHOD_PLAIN","timeout_s":60.0,"memory_cap_bytes":"2147483648"}','plain','[1.0,1.01,1.02,1.03,1.04,1.05,1.06,1.07,1.08,1.09,1.1,1.11,1.12,1.13,1.1400000000000001,1.15,1.16,1.17,1.18,1.19]',1.09500000000000019539e+00,1.095,1.17,1.18,1.0,1.19,5.76628129733539537826e-02,5.26601031720127440993e-02,1.09500000000000019539e+00,NULL,12.5,3.25,123456789,'CPUExecutionProvider','["throttled after the run"]','0.1.0','1.32.0','host-1',1,1,2400.0,2300.0,51.5,NULL,0.25,0.5,0,1,2.0,1700000100.0,1.79616951822064018244e+09,'local');
INSERT INTO "measurements" VALUES(2,'eebf8b4ae383f689c06851d885762cd0','pi-1','29c1b289e7522195b362e44f54e05470b69ad20540ab60a18a05e5bf6951f13d','ac7f42862e14f837','{"warmup_runs":10,"min_runs":50,"min_duration_s":1.0,"max_runs":1000,"max_duration_s":10.0,"intra_op_threads":1,"inter_op_threads":1,"providers":["CPUExecutionProvider"],"graph_optimization":"GRAPH_OPTIMIZATION_ALL","input_shapes":[{"name":"input","dims":["1","3","32","32"]}],"seed":"0","method":"METHOD_PAIRED","timeout_s":60.0,"memory_cap_bytes":"2147483648"}','paired','[1.0,1.01,1.02,1.03,1.04,1.05,1.06,1.07,1.08,1.09,1.1,1.11,1.12,1.13,1.1400000000000001,1.15,1.16,1.17,1.18,1.19]',1.09500000000000019539e+00,1.095,1.17,1.18,1.0,1.19,5.76628129733539537826e-02,5.26601031720127440993e-02,1.14975000000000027178e+00,'{"reference_name":"ref","reference_sha256":"52367a6622b19f08825e915fad80c542ad4f4c34dbcebad9f5007994b3e39208","reference_samples_ms":[2.0,2.0,2.0,2.0,2.0,2.0,2.0,2.0,2.0,2.0,2.0,2.0,2.0,2.0,2.0,2.0,2.0,2.0,2.0,2.0],"ratios":[0.5,0.505,0.51,0.515,0.52,0.525,0.53,0.535,0.54,0.545,0.55,0.555,0.56,0.565,0.5700000000000001,0.575,0.58,0.585,0.59,0.595],"ratio_median":0.5475000000000001,"reference_calibrated_ms":2.1,"reference_calibrated_at":1700000100.0,"latency_ms":1.1497500000000003,"ratio_cv":0.01}',12.5,3.25,123456789,'CPUExecutionProvider','["throttled after the run"]','0.1.0','1.32.0','host-1',1,1,2400.0,2300.0,51.5,NULL,0.25,0.5,0,1,2.0,1700000200.0,1.79616951822855591778e+09,'local');
INSERT INTO "measurements" VALUES(3,'8d4cfa8fe6035d71b8b76f57042a7758','gone-1','153812ae5fea0b73a011bf28bd7cea93644437c3fe3260b7b2d7e1e2f9f46bde','d0c2a4670fee62be','{"warmup_runs":10,"min_runs":50,"min_duration_s":1.0,"max_runs":1000,"max_duration_s":10.0,"intra_op_threads":1,"inter_op_threads":1,"providers":["CPUExecutionProvider"],"graph_optimization":"GRAPH_OPTIMIZATION_ALL","input_shapes":[{"name":"input","dims":["1","3","32","32"]}],"seed":"0","method":"METHOD_PLAIN","timeout_s":60.0,"memory_cap_bytes":"2147483648"}','plain','[1.0,1.01,1.02,1.03,1.04,1.05,1.06,1.07,1.08,1.09,1.1,1.11,1.12,1.13,1.1400000000000001,1.15,1.16,1.17,1.18,1.19]',1.09500000000000019539e+00,1.095,1.17,1.18,1.0,1.19,5.76628129733539537826e-02,5.26601031720127440993e-02,1.09500000000000019539e+00,NULL,12.5,3.25,123456789,'CPUExecutionProvider','["throttled after the run"]','0.1.0','1.32.0','host-9',1,1,2400.0,2300.0,51.5,NULL,0.25,0.5,0,1,2.0,1700000300.0,1.79616951823372244839e+09,'local');
CREATE TABLE migrations (
        version    INTEGER PRIMARY KEY,
        name       TEXT NOT NULL,
        applied_at REAL NOT NULL
    );
INSERT INTO "migrations" VALUES(1,'initial_schema',1.79616951819418025019e+09);
INSERT INTO "migrations" VALUES(2,'lut_tables',1.79616951819531631465e+09);
INSERT INTO "migrations" VALUES(3,'search_tables',1.79616951819589805603e+09);
CREATE TABLE models (
        sha256      TEXT PRIMARY KEY,  -- of the ONNX bytes
        size_bytes  INTEGER,
        space       TEXT,              -- search space name, when known
        arch        TEXT,              -- the space's arch encoding, when known
        params      INTEGER,
        flops       INTEGER,
        created_at  REAL NOT NULL
    );
INSERT INTO "models" VALUES('ca0df2c95aa144c1d0ff2ff3c8f967fdc1de9ef0c4120b3726416701b519d619',1234,'nb201','|a|',10,20,1.79616951822064018244e+09);
INSERT INTO "models" VALUES('29c1b289e7522195b362e44f54e05470b69ad20540ab60a18a05e5bf6951f13d',NULL,NULL,NULL,NULL,NULL,1.79616951822855591778e+09);
INSERT INTO "models" VALUES('153812ae5fea0b73a011bf28bd7cea93644437c3fe3260b7b2d7e1e2f9f46bde',NULL,NULL,NULL,NULL,NULL,1.79616951823372244839e+09);
CREATE TABLE search_candidates (
        search_id     INTEGER NOT NULL REFERENCES searches (id) ON DELETE CASCADE,
        candidate_id  INTEGER NOT NULL,
        encoding      TEXT NOT NULL,
        generation    INTEGER NOT NULL,
        parents       TEXT NOT NULL,     -- JSON array of candidate ids
        state         TEXT NOT NULL CHECK (state IN ('pending', 'complete', 'failed')),
        model_sha256  TEXT REFERENCES models (sha256),
        metrics       TEXT NOT NULL,     -- JSON: value by name (objectives, constraints, extras)
        sources       TEXT NOT NULL,     -- JSON: where each value came from
        source        TEXT CHECK (source IN ('measured', 'predicted', 'mixed')),
        measurements  TEXT NOT NULL,     -- JSON: measurement uid by latency objective
        feasible      INTEGER,           -- 0/1 once complete
        violation     REAL,              -- total relative constraint violation
        failure       TEXT,
        asked_at      REAL NOT NULL,
        told_at       REAL,
        updated_at    REAL NOT NULL,
        PRIMARY KEY (search_id, candidate_id)
    ) WITHOUT ROWID
    ;
CREATE TABLE searches (
        id           INTEGER PRIMARY KEY,
        space        TEXT NOT NULL,      -- SearchSpace.identity()
        mode         TEXT NOT NULL CHECK (mode IN ('measured', 'lut', 'hybrid')),
        config       TEXT NOT NULL,      -- JSON: space, targets + settings, objectives, ...
        status       TEXT NOT NULL
                     CHECK (status IN ('running', 'interrupted', 'failed', 'complete')),
        budget       INTEGER NOT NULL,   -- candidates to evaluate
        trials       INTEGER NOT NULL,   -- evaluated so far (complete + failed)
        measured     INTEGER NOT NULL,   -- latency values taken from measurements
        device_runs  INTEGER NOT NULL,   -- of those, benchmarks run for this search
        predicted    INTEGER NOT NULL,   -- latency values predicted (LUT or surrogate)
        state        TEXT,               -- JSON: SearchEngine.state_dict() after the last step
        step         INTEGER NOT NULL,   -- commits so far
        owner        TEXT,               -- host:pid of the process running it
        error        TEXT,
        created_at   REAL NOT NULL,
        updated_at   REAL NOT NULL,
        finished_at  REAL
    );
CREATE INDEX devices_by_class ON devices (device_class);
CREATE INDEX devices_by_host ON devices (host_fingerprint);
CREATE INDEX models_by_origin ON models (space, arch);
CREATE INDEX measurements_cache
        ON measurements (model_sha256, device, settings_hash, started_at)
    ;
CREATE INDEX measurements_by_device ON measurements (device, started_at);
CREATE INDEX luts_by_device ON luts (device, space_name);
CREATE INDEX lut_reports_by_lut ON lut_reports (lut_id, kind, created_at);
CREATE INDEX search_candidates_by_model ON search_candidates (model_sha256);
COMMIT;
