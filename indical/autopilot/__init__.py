"""`indical autopilot`: the calibration work of every night, by itself.

plan.py reads PLAN.toml; windows.py finds dusk, night, dawn and day at the rig's site;
conditions.py decides `needed`, `clear` and `cloudy`; journal.py keeps the JSON-lines journal and
the state that makes a restart repeat nothing; arrival.py watches a folder for lights; pilot.py
runs the nights."""
