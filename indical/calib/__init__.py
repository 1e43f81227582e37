"""The calibration core: ingest frames, keep them in a library, group them by configuration and
combine each group into a master bias, dark, dark flat or flat.

Modules: `config` (the camera configuration every step compares), `ingest` (read and classify
FITS files), `db` (the library database: its schema and migrations), `library` (SQLite index of
frames and masters, and the frame sink sequences write into), `grouping` (configuration keys and temperature
clusters), `precal` (what is subtracted from flats), `combine` (the streaming combine engine)
and `master` (build one master with its headers and provenance)."""
