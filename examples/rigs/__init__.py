"""Example rig files (TOML), shipped with indical: `indical rig check NAME.toml` finds them by name."""
