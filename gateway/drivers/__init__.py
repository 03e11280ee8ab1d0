"""Device drivers: pure decoders (SunSpec, register profiles, TIC, P1) and thin I/O around them."""
