"""Example autopilot plan, its simulated rig and systemd unit, shipped with indical: `indical autopilot plan.toml` finds the plan by name."""
