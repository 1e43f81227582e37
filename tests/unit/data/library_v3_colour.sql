-- A calibration library written by indical cd17a2b (schema version 3, the last before masters
-- had a Bayer pattern): RGGB darks and flats, their masters built by the library's own builder
-- (group keys without a pattern), two Siril colour master flats imported (GRBG filter R; BGGR
-- filter G, whose file was deleted). Made by make_library_v3_colour.py; sqlite3 iterdump, paths
-- under /data. Opened by test_calib_colour_upgrade.py.
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
CREATE TABLE camera_sensors (
            camera TEXT PRIMARY KEY,
            sensor TEXT NOT NULL CHECK (sensor IN ('cmos', 'ccd'))
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
INSERT INTO "frames" VALUES(1,'/data/raw/dark_0.fits','33556f5e084d4093677ddda4225e2fa089ae259089f48016d0e07855845220c6','dark','Sim Cam',NULL,100.0,10.0,1,1,32,24,'L',60.0,-10.0,-10.0,'RGGB','2026-11-20T22:00:00.000+00:00',1000.0,3.0,'2026-12-03T03:22:11.243+00:00',NULL);
INSERT INTO "frames" VALUES(2,'/data/raw/dark_1.fits','848e1e97f48030ed6fcf46a30d75183ead179be30946a178fe2de4433f692650','dark','Sim Cam',NULL,100.0,10.0,1,1,32,24,'L',60.0,-10.0,-10.0,'RGGB','2026-11-20T22:01:00.000+00:00',1000.0,4.0,'2026-12-03T03:22:11.244+00:00',NULL);
INSERT INTO "frames" VALUES(3,'/data/raw/dark_2.fits','18b329f774694dfe4aff4ec976273e28b36f82e63de8c45f27b070f471377d8f','dark','Sim Cam',NULL,100.0,10.0,1,1,32,24,'L',60.0,-10.0,-10.0,'RGGB','2026-11-20T22:02:00.000+00:00',1000.0,3.0,'2026-12-03T03:22:11.245+00:00',NULL);
INSERT INTO "frames" VALUES(4,'/data/raw/flat_0.fits','809d88592410182226d64c86db6e9484389fbe8b50df3ab1ec180702df668310','flat','Sim Cam',NULL,100.0,10.0,1,1,32,24,'L',1.5,-10.0,-10.0,'RGGB','2026-11-20T22:00:00.000+00:00',12000.0,3002.0,'2026-12-03T03:22:11.246+00:00',NULL);
INSERT INTO "frames" VALUES(5,'/data/raw/flat_1.fits','03cdce2ce419097332cab7bb48b178e3454ff47ae9937aa0db45546d3149d2b0','flat','Sim Cam',NULL,100.0,10.0,1,1,32,24,'L',1.5,-10.0,-10.0,'RGGB','2026-11-20T22:01:00.000+00:00',12000.0,3001.5,'2026-12-03T03:22:11.247+00:00',NULL);
INSERT INTO "frames" VALUES(6,'/data/raw/flat_2.fits','0abc8d35234ef6b5ea2e065b3bd0e8c0106189bd0bf03a0a552abe8300cdb23f','flat','Sim Cam',NULL,100.0,10.0,1,1,32,24,'L',1.5,-10.0,-10.0,'RGGB','2026-11-20T22:02:00.000+00:00',12000.0,3001.0,'2026-12-03T03:22:11.248+00:00',NULL);
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
CREATE TABLE light_masters (
            light_path TEXT NOT NULL REFERENCES light_calibration (path) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            master_id INTEGER NOT NULL,
            master_path TEXT NOT NULL,
            master_created TEXT NOT NULL,
            PRIMARY KEY (light_path, kind)
        );
CREATE TABLE master_sources (
            master_id INTEGER NOT NULL REFERENCES masters (id),
            frame_id INTEGER NOT NULL REFERENCES frames (id),
            PRIMARY KEY (master_id, frame_id)
        );
INSERT INTO "master_sources" VALUES(1,1);
INSERT INTO "master_sources" VALUES(1,2);
INSERT INTO "master_sources" VALUES(1,3);
INSERT INTO "master_sources" VALUES(2,4);
INSERT INTO "master_sources" VALUES(2,5);
INSERT INTO "master_sources" VALUES(2,6);
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
INSERT INTO "masters" VALUES(1,'/data/lib/masters/master_dark_60s_bin1x1_g100_o10_32x24_-10.0C_20261203T032211254520.fits','dark','Sim Cam',NULL,100.0,10.0,1,1,32,24,NULL,60.0,-10.0,'{"binning": "1x1", "camera": "Sim Cam", "exposure_s": 60.0, "filter": null, "frame_type": "dark", "gain": 100.0, "height": 24, "offset": 10.0, "readout_mode": null, "width": 32}','sigma','{"center": "median", "maxiters": 5, "sigma_high": 3.0, "sigma_low": 3.0}','none',3,'2026-12-03T03:22:11.256+00:00',NULL,'',NULL);
INSERT INTO "masters" VALUES(2,'/data/lib/masters/master_flat_L_bin1x1_g100_o10_32x24_-10.0C_20261203T032211261825.fits','flat','Sim Cam',NULL,100.0,10.0,1,1,32,24,'L',1.5,-10.0,'{"binning": "1x1", "camera": "Sim Cam", "exposure_s": null, "filter": "L", "frame_type": "flat", "gain": 100.0, "height": 24, "offset": 10.0, "readout_mode": null, "width": 32}','sigma','{"center": "median", "maxiters": 5, "sigma_high": 3.0, "sigma_low": 3.0}','none',3,'2026-12-03T03:22:11.263+00:00',NULL,'',NULL);
INSERT INTO "masters" VALUES(3,'/data/lib/masters/imported_flat_siril-flat-0-c173a198_20261203T032211270410.fits','flat','Sim Cam',NULL,100.0,10.0,1,1,32,24,'R',2.0,-10.0,'{"binning": "1x1", "camera": "Sim Cam", "exposure_s": null, "filter": "R", "frame_type": "flat", "gain": 100.0, "height": 24, "offset": 10.0, "readout_mode": null, "width": 32}','imported from Siril','{"scale": 1.0, "source": "/data/siril_flat_0.fits"}','as made by Siril',20,'2026-12-03T03:22:11.272+00:00',NULL,'',NULL);
INSERT INTO "masters" VALUES(4,'/data/lib/masters/imported_flat_siril-flat-1-e276c7d0_20261203T032211277985.fits','flat','Sim Cam',NULL,100.0,10.0,1,1,32,24,'G',2.0,-10.0,'{"binning": "1x1", "camera": "Sim Cam", "exposure_s": null, "filter": "G", "frame_type": "flat", "gain": 100.0, "height": 24, "offset": 10.0, "readout_mode": null, "width": 32}','imported from Siril','{"scale": 1.0, "source": "/data/siril_flat_1.fits"}','as made by Siril',20,'2026-12-03T03:22:11.279+00:00',NULL,'',NULL);
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
