"""`indical demo`: the shipped sequences run with quick settings on a simulated observatory and
summarised from their exposure logs: panel flats (`panel`), then a simulated dusk (`twilight`).
Above the sequence engine; the command (indical/commands/demo.py) chooses the rig."""
