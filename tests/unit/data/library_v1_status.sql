-- A calibration library written by indical 73f1a7a (schema version 1), dumped with
-- sqlite3 iterdump; paths rewritten to /data. Opened by test_calib_db.py to check upgrades.
BEGIN TRANSACTION;
CREATE TABLE bad_pixel_maps (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    camera TEXT NOT NULL DEFAULT '',
    readout_mode TEXT,
    gain REAL,
    offset REAL,
    xbin INTEGER NOT NULL DEFAULT 1,
    ybin INTEGER NOT NULL DEFAULT 1,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    temperature_c REAL,
    dark_master_id INTEGER,
    flat_master_id INTEGER,
    n_hot INTEGER NOT NULL,
    n_cold INTEGER NOT NULL,
    n_dead INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    superseded_by INTEGER
);
CREATE TABLE captures (
    id INTEGER PRIMARY KEY,
    sequence TEXT NOT NULL,
    description TEXT NOT NULL,
    target INTEGER NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    started_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    finished INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE expiry (
    frame_type TEXT PRIMARY KEY,
    max_age_days REAL NOT NULL
);
INSERT INTO "expiry" VALUES('dark',45.0);
CREATE TABLE frames (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    sha256 TEXT NOT NULL UNIQUE,
    frame_type TEXT NOT NULL,
    camera TEXT NOT NULL DEFAULT '',
    readout_mode TEXT,
    gain REAL,
    offset REAL,
    xbin INTEGER NOT NULL DEFAULT 1,
    ybin INTEGER NOT NULL DEFAULT 1,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    filter TEXT,
    exposure_s REAL NOT NULL,
    sensor_temp_c REAL,
    setpoint_temp_c REAL,
    bayer_pattern TEXT,
    date_obs TEXT,
    median_adu REAL,
    mad_adu REAL,
    ingested_at TEXT NOT NULL
);
INSERT INTO "frames" VALUES(1,'/data/raw/dark_0.fits','5eadedfc7c43e4c40cf0697de191f82b0429d7de09fdf4fe19716a0970bc2270','dark','Sim Cam',NULL,100.0,10.0,1,1,64,48,NULL,1.0,-10.0,-10.0,NULL,'2026-03-20T18:00:00.000+00:00',20000.0,3.0,'2026-12-02T17:54:54.500+00:00');
INSERT INTO "frames" VALUES(2,'/data/raw/dark_1.fits','32d7675ec3ce2dd3abfb41dbd04eef80d0bd2248fabf4114e451b1d784641330','dark','Sim Cam',NULL,100.0,10.0,1,1,64,48,NULL,1.0,-10.0,-10.0,NULL,'2026-03-20T18:00:10.000+00:00',20000.0,3.0,'2026-12-02T17:54:54.520+00:00');
INSERT INTO "frames" VALUES(3,'/data/raw/light_0.fits','4bca1ae549ea7b071552ad9fccb28097c5acf7ede3e1081e9dbfa8cdbedbd9a7','light','Sim Cam',NULL,100.0,10.0,1,1,64,48,NULL,1.0,-10.0,-10.0,NULL,'2026-03-20T18:01:30.000+00:00',20000.0,3.0,'2026-12-02T17:54:54.542+00:00');
CREATE TABLE light_calibration (
    path TEXT PRIMARY KEY,
    frame_id INTEGER,
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    missing TEXT NOT NULL DEFAULT '[]',
    warnings TEXT NOT NULL DEFAULT '[]',
    output TEXT,
    night TEXT,
    updated_at TEXT NOT NULL,
    needs_recal INTEGER NOT NULL DEFAULT 0
);
INSERT INTO "light_calibration" VALUES('/data/raw/light_0.fits',3,'calibrated','','[]','[]','/data/cal.fits','2026-03-20','2026-12-02T17:54:54+00:00',0);
CREATE TABLE light_masters (
    light_path TEXT NOT NULL REFERENCES light_calibration (path) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    master_id INTEGER NOT NULL,
    master_path TEXT NOT NULL,
    master_created TEXT NOT NULL,
    PRIMARY KEY (light_path, kind)
);
INSERT INTO "light_masters" VALUES('/data/raw/light_0.fits','dark',1,'/data/lib/masters/master_dark.fits','2026-03-21T00:00:00+00:00');
CREATE TABLE master_sources (
    master_id INTEGER NOT NULL REFERENCES masters (id),
    frame_id INTEGER NOT NULL REFERENCES frames (id),
    PRIMARY KEY (master_id, frame_id)
);
INSERT INTO "master_sources" VALUES(1,1);
INSERT INTO "master_sources" VALUES(1,2);
CREATE TABLE masters (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    frame_type TEXT NOT NULL,
    camera TEXT NOT NULL DEFAULT '',
    readout_mode TEXT,
    gain REAL,
    offset REAL,
    xbin INTEGER NOT NULL DEFAULT 1,
    ybin INTEGER NOT NULL DEFAULT 1,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    filter TEXT,
    exposure_s REAL NOT NULL,
    temperature_c REAL,
    group_key TEXT NOT NULL,
    method TEXT NOT NULL,
    parameters TEXT NOT NULL DEFAULT '{}',
    precal TEXT NOT NULL DEFAULT 'none',
    n_frames INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    superseded_by INTEGER REFERENCES masters (id)
);
INSERT INTO "masters" VALUES(1,'/data/lib/masters/master_dark.fits','dark','Sim Cam',NULL,100.0,10.0,1,1,64,48,NULL,1.0,-10.0,'{"k": 1}','median','{}','none',2,'2026-03-21T00:00:00.000+00:00',NULL);
CREATE INDEX frames_config ON frames (frame_type, camera, xbin, ybin, filter);
CREATE INDEX masters_key ON masters (group_key, superseded_by);
CREATE INDEX light_calibration_status ON light_calibration (status, needs_recal);
CREATE INDEX light_masters_master ON light_masters (kind, master_id);
CREATE TRIGGER light_recal_on_supersede
AFTER UPDATE OF superseded_by ON masters
WHEN NEW.superseded_by IS NOT NULL AND OLD.superseded_by IS NULL
BEGIN
    UPDATE light_calibration SET needs_recal = 1
    WHERE status = 'calibrated' AND path IN (
        SELECT light_path FROM light_masters WHERE master_id = NEW.id AND kind != 'bpm');
END;
COMMIT;
PRAGMA user_version=1;
