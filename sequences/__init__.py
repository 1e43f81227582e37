"""The sequence files shipped with indical, installed as `indical.shipped_sequences` so a plain
`pip install` has them too. They are plain Python files run by `indical run FILE` (and the
demo), not imported: copy one beside your rig file and edit it."""
