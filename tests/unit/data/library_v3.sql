-- A calibration library written by indical cd17a2b (schema version 3: frames, masters, a
-- superseded master, light status with the trigger fired, a capture, a bad pixel map, expiry,
-- a sensor), dumped with sqlite3 iterdump; paths rewritten to /data. Opened by test_calib_db.py.
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
INSERT INTO "bad_pixel_maps" VALUES(1,'/data/lib/bpm.fits','Sim Cam',NULL,100.0,10.0,1,1,64,48,-10.0,1,NULL,3,2,1,'2026-11-20T22:00:00+00:00',NULL);
CREATE TABLE camera_sensors (
            camera TEXT PRIMARY KEY,
            sensor TEXT NOT NULL CHECK (sensor IN ('cmos', 'ccd'))
        );
INSERT INTO "camera_sensors" VALUES('Sim Cam','ccd');
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
INSERT INTO "captures" VALUES(1,'darks','60 s darks',20,5,'2026-12-02T22:36:51+00:00','2026-12-02T22:36:51+00:00',0);
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
        , flat_source TEXT);
INSERT INTO "frames" VALUES(1,'/data/raw/dark_0.fits','0000000000000000000000000000000000000000000000000000000000000000','dark','Sim Cam',NULL,100.0,10.0,1,1,64,48,NULL,60.0,-10.0,-10.0,NULL,'2026-11-20T22:00:00.000+00:00',1000.0,5.0,'2026-12-02T22:36:51.957+00:00',NULL);
INSERT INTO "frames" VALUES(2,'/data/raw/dark_1.fits','0000000000000000000000000000000000000000000000000000000000000001','dark','Sim Cam',NULL,100.0,10.0,1,1,64,48,NULL,60.0,-10.0,-10.0,NULL,'2026-11-20T22:01:00.000+00:00',1001.0,5.0,'2026-12-02T22:36:51.957+00:00',NULL);
INSERT INTO "frames" VALUES(3,'/data/raw/flat_2.fits','0000000000000000000000000000000000000000000000000000000000000002','flat','Sim Cam',NULL,100.0,10.0,1,1,64,48,'L',1.5,-10.0,-10.0,NULL,'2026-11-20T22:02:00.000+00:00',1002.0,5.0,'2026-12-02T22:36:51.957+00:00','PANEL');
INSERT INTO "frames" VALUES(4,'/data/raw/flat_3.fits','0000000000000000000000000000000000000000000000000000000000000003','flat','Sim Cam',NULL,100.0,10.0,1,1,64,48,'L',1.5,-10.0,-10.0,NULL,'2026-11-20T22:03:00.000+00:00',1003.0,5.0,'2026-12-02T22:36:51.957+00:00','SKY');
INSERT INTO "frames" VALUES(5,'/data/raw/light_4.fits','0000000000000000000000000000000000000000000000000000000000000004','light','Sim Cam',NULL,100.0,10.0,1,1,64,48,'L',60.0,-10.0,-10.0,NULL,'2026-11-20T22:04:00.000+00:00',1004.0,5.0,'2026-12-02T22:36:51.958+00:00',NULL);
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
INSERT INTO "light_calibration" VALUES('/data/raw/light_4.fits',5,'calibrated','','[]','["w"]','/data/cal/light_4.fits','2026-11-20','2026-12-02T22:36:51+00:00',1);
CREATE TABLE light_masters (
            light_path TEXT NOT NULL REFERENCES light_calibration (path) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            master_id INTEGER NOT NULL,
            master_path TEXT NOT NULL,
            master_created TEXT NOT NULL,
            PRIMARY KEY (light_path, kind)
        );
INSERT INTO "light_masters" VALUES('/data/raw/light_4.fits','dark',1,'/data/lib/m1.fits','2026-11-20T22:00:00+00:00');
CREATE TABLE master_sources (
            master_id INTEGER NOT NULL REFERENCES masters (id),
            frame_id INTEGER NOT NULL REFERENCES frames (id),
            PRIMARY KEY (master_id, frame_id)
        );
INSERT INTO "master_sources" VALUES(1,1);
INSERT INTO "master_sources" VALUES(1,2);
INSERT INTO "master_sources" VALUES(2,1);
INSERT INTO "master_sources" VALUES(2,2);
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
        , precal_reason TEXT NOT NULL DEFAULT '', flat_source TEXT);
INSERT INTO "masters" VALUES(1,'/data/lib/m1.fits','dark','Sim Cam',NULL,100.0,10.0,1,1,64,48,NULL,60.0,-10.0,'{"camera": "Sim Cam", "frame_type": "dark"}','sigma','{"kappa": 3.0}','none',2,'2026-11-20T22:00:00.000+00:00',2,'',NULL);
INSERT INTO "masters" VALUES(2,'/data/lib/m2.fits','dark','Sim Cam',NULL,100.0,10.0,1,1,64,48,NULL,60.0,-10.0,'{"camera": "Sim Cam", "frame_type": "dark"}','sigma','{"kappa": 3.0}','none',2,'2026-11-20T23:00:00.000+00:00',NULL,'',NULL);
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
PRAGMA user_version = 3;
COMMIT;
