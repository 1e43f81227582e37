"""FITS files: `header` reads and writes header cards without astropy (the fast path of short
processes), `keywords` maps a frame's metadata to and from the keywords other tools read, and
`io` reads and writes whole frames atomically through astropy. Nothing is imported here, so
that `indical.fits.header` alone never pulls in astropy."""
