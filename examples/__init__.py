"""Example rig files (rigs/*.toml), installed as `indical.examples` so a wheel carries them:
`indical rig check flipflat-emulator.toml` finds one by its name. Data only: no code."""
